import type { Metrics } from '../http/metrics.js';
import type { Logger } from '../log.js';

/**
 * When to renew a background credential (ECR's authorization token, ACR's refresh token), so that an
 * answer that is already expired — a clock far off, a broken endpoint — cannot make renewal a loop
 * that calls the cloud API hundreds of times a second with no traffic at all.
 */

/** Renew when this fraction of the credential's lifetime has passed. */
const RENEW_AT = 0.8;
/**
 * No renewal sooner than this after the last one. Real lifetimes are hours (ECR 12 h, ACR's refresh
 * token ~3 h, bounded by its Entra token's ~1 h): anything renewed sooner is a broken answer, and 3 s
 * holds such an upstream to one call per 3 s before back-off, far below the APIs' own throttles
 * (GetAuthorizationToken: 20 per second per account and region).
 */
export const RENEWAL_FLOOR_MS = 3_000;
/** Back-off stops doubling here: a credential service that heals is used again within 5 minutes. */
export const RENEWAL_CEILING_MS = 5 * 60_000;
/** setTimeout fires at once beyond 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface RenewalPlan {
  delayMs: number;
  /** Consecutive answers too short-lived to renew at 80 % (0: this one was fine). */
  shortStreak: number;
}

/**
 * The delay before the next renewal, from the lifetime left when the answer arrived and how many
 * answers in a row were too short-lived. Pure. A lifetime whose 80 % is at least the floor: 80 % of it,
 * and the streak ends. Otherwise (already expired, NaN, or just short): the floor, doubled for each
 * short answer before it, up to the ceiling.
 */
export function renewalDelay(lifetimeMs: number, shortStreak: number): RenewalPlan {
  const due = lifetimeMs * RENEW_AT;
  if (due >= RENEWAL_FLOOR_MS) return { delayMs: Math.min(MAX_TIMER_MS, due), shortStreak: 0 };
  const streak = shortStreak + 1;
  return {
    delayMs: Math.min(RENEWAL_CEILING_MS, RENEWAL_FLOOR_MS * 2 ** Math.min(streak - 1, 30)),
    shortStreak: streak,
  };
}

/** What a call for the credential came to: a usable lifetime, one too short to renew at 80 %, or a failure. */
export type RenewalOutcome = 'ok' | 'short-lifetime' | 'error';

/** Told of every call for a credential (the metrics): its outcome and, after an answer, the back-off now in force (0: none). */
export type RenewalObserver = (outcome: RenewalOutcome, backoffMs?: number) => void;

/** The observer feeding the credential-renewal metrics of one upstream (`upstreams[].name`, else its host). */
export function renewalMetrics(
  metrics: Metrics | undefined,
  upstream: { name?: string; url: string },
): RenewalObserver | undefined {
  if (!metrics) return undefined;
  const label = upstream.name || new URL(upstream.url).host;
  return (outcome, backoffMs) => {
    metrics.credentialRenewals.inc({ upstream: label, outcome });
    if (backoffMs !== undefined) metrics.credentialRenewalBackoff.set({ upstream: label }, backoffMs / 1000);
  };
}

/**
 * The renewal bookkeeping of one credential: plans each delay with `renewalDelay`, warns once when a
 * run of short-lived answers starts and says when it ends (not one line per renewal), and reports
 * each call to `observe`.
 */
export function renewalPacer(what: string, logger: Logger, observe?: RenewalObserver) {
  let streak = 0;
  return {
    /** The delay after a successful call that left `lifetimeMs` of the credential. */
    answered(lifetimeMs: number): number {
      const plan = renewalDelay(lifetimeMs, streak);
      if (plan.shortStreak === 1)
        logger.warn(
          { lifetimeSeconds: Math.round(lifetimeMs / 1000), nextRenewalSeconds: plan.delayMs / 1000 },
          `${what} came back already expired or nearly so (clock skew, or a broken endpoint): renewing with back-off up to ${RENEWAL_CEILING_MS / 1000} s, using each one until then`,
        );
      else if (plan.shortStreak === 0 && streak > 0)
        logger.info({ shortAnswers: streak }, `${what} has a usable lifetime again`);
      streak = plan.shortStreak;
      observe?.(streak ? 'short-lifetime' : 'ok', streak ? plan.delayMs : 0);
      return plan.delayMs;
    },
    /** Runs one call for the credential, reporting a failure as `error`. */
    async attempt<T>(call: () => Promise<T>): Promise<T> {
      try {
        return await call();
      } catch (err) {
        observe?.('error');
        throw err;
      }
    },
    /** True while answers come back too short-lived. */
    get backingOff(): boolean {
      return streak > 0;
    },
  };
}
