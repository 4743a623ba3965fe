import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { KeyFn, Limiter, MatchFn } from '../limits/types.js';
import { compileLimitKey, compileLimitMatch } from '../policy/limit-key.js';
import type { Guard } from '../proxy/guards.js';
import { limitGuard } from '../proxy/guards/limits.js';

/**
 * `limits.rules` in a Limiter over `limits.store`, key and match expressions compiled (a bad one
 * fails the start); none configured: undefined. The engine is loaded only then, and ioredis only for
 * a Redis store (limiter.ts): together ~30 MB of RSS at start-up, which a proxy without limits never
 * pays (the 1 GiB streaming test's bound).
 */
export async function createLimits(config: Config, logger: Logger, registry: Registry): Promise<Limiter | undefined> {
  const { rules, store } = config.limits;
  if (rules.length === 0) return undefined;
  const [{ createLimiter }, { storeKind }] = await Promise.all([
    import('../limits/limiter.js'),
    import('../limits/store.js'),
  ]);
  const keys = new Map<string, KeyFn>();
  const matches = new Map<string, MatchFn>();
  for (const r of rules) {
    if (r.key) keys.set(r.name, compileLimitKey(r.name, r.key));
    if (r.match) matches.set(r.name, compileLimitMatch(r.name, r.match));
  }
  const kind = storeKind(config);
  logger.info(
    { store: kind, rules: rules.map((r) => r.name), failMode: kind === 'redis' ? store.failMode : undefined },
    'limits: counting',
  );
  return createLimiter({ rules, store, kind, keys, matches, logger, registry });
}

/** What /readyz says of the store: its state, and a reason not to be ready when it is down and failMode is closed. */
export function limitsReadiness(limits: Limiter | undefined): { state?: object; reason?: string } {
  if (!limits) return {};
  const state = limits.state();
  const down = state.state !== 'ready' && state.failMode === 'closed';
  return {
    state,
    ...(down ? { reason: `rate-limit store ${state.store} ${state.state} (limits.store.failMode: closed)` } : {}),
  };
}

/** The guard stage with the limit guard last (after the others may refuse for free), when a rule counts at /v2/. */
export function withLimitGuard(
  limits: Limiter | undefined,
  guards: readonly Guard[],
  service: string,
): readonly Guard[] {
  return limits?.applies('registry') ? [...guards, limitGuard(limits, service)] : guards;
}
