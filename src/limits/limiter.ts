import { RateLimiterRes } from 'rate-limiter-flexible';
import type { LimitRule, LimitStoreConfig } from '../config/types.js';
import { isAnonymous } from '../identity/types.js';
import type { Logger } from '../log.js';
import { limitMetrics, type LimitMetrics } from './metrics.js';
import { counterPlans, counts, identityKey, storedKey, type CounterPlan } from './rules.js';
import { clusterStore, memoryStore, type Counter, type Store } from './store.js';
import type { Headroom, KeyFn, Limiter, LimitSubject, MatchFn, StoreState, Verdict } from './types.js';
import type { Registry } from 'prom-client';

interface CompiledRule {
  rule: LimitRule;
  key: KeyFn;
  match?: MatchFn;
  keyClass: 'identity' | 'expression';
  /** A key expression in words, for the message: the expression itself. */
  per: string;
  counters: { plan: CounterPlan; counter: Counter }[];
}

type Outcome =
  | { kind: 'ok'; res: RateLimiterRes; plan: CounterPlan; rule: CompiledRule; undo: () => Promise<unknown> }
  | { kind: 'over'; res: RateLimiterRes; plan: CounterPlan; rule: CompiledRule; per: string }
  | { kind: 'failed'; err: Error };

interface LimiterOptions {
  rules: readonly LimitRule[];
  store: LimitStoreConfig;
  kind: StoreState['store'];
  /** Compiled `key` expressions by rule name (policy/limit-key.ts); absent: issuer + subject. */
  keys: ReadonlyMap<string, KeyFn>;
  /** Compiled `match` expressions by rule name; absent: every request counts. */
  matches?: ReadonlyMap<string, MatchFn>;
  logger: Logger;
  registry?: Registry;
}

/** ioredis is imported only for a Redis store: a memory or cluster store never pays its start-up RSS. */
async function openStore(o: LimiterOptions, metrics: LimitMetrics): Promise<Store> {
  if (o.kind === 'redis') {
    const { redisStore } = await import('./redis-store.js');
    return redisStore(o.store, o.logger, (s) => metrics.storeUp.set({ store: s.store }, s.state === 'ready' ? 1 : 0));
  }
  if (o.kind === 'cluster') return clusterStore(o.store.timeout);
  return memoryStore();
}

async function consume(
  c: CompiledRule,
  plan: CounterPlan,
  counter: Counter,
  key: string,
  per: string,
): Promise<Outcome> {
  try {
    const stored = storedKey(key);
    const undo = () => counter.reward(stored, 1);
    return { kind: 'ok', res: await counter.consume(stored, 1), plan, rule: c, undo };
  } catch (err) {
    if (err instanceof RateLimiterRes) return { kind: 'over', res: err, plan, rule: c, per };
    return { kind: 'failed', err: err as Error };
  }
}

/**
 * The verdict of one request's outcomes: a store failure, else the refusal that lasts longest, else
 * the headroom of the window closest to its end (Docker Hub's headers report the pull window, so a
 * pace counter is reported only when no window counted). Pure.
 */
function verdictOf(outcomes: readonly Outcome[]): Verdict {
  const failed = outcomes.find((o) => o.kind === 'failed');
  if (failed) return { ok: false, unavailable: failed.err.message };
  let over: Extract<Outcome, { kind: 'over' }> | undefined;
  let headroom: (Headroom & { window: boolean }) | undefined;
  for (const o of outcomes) {
    if (o.kind === 'over' && (!over || o.res.msBeforeNext > over.res.msBeforeNext)) over = o;
    if (o.kind !== 'ok') continue;
    const h = {
      rule: o.rule.rule.name,
      limit: o.plan.limit,
      remaining: Math.max(0, o.res.remainingPoints),
      resetMs: o.res.msBeforeNext,
      windowS: o.plan.spec.durationS,
      window: o.plan.window,
    };
    const better =
      !headroom || (h.window && !headroom.window) || (h.window === headroom.window && h.remaining < headroom.remaining);
    if (better) headroom = h;
  }
  if (!over) {
    if (!headroom) return { ok: true };
    const { window: _window, ...h } = headroom;
    return { ok: true, headroom: h };
  }
  const { rule, plan, res, per } = over;
  return {
    ok: false,
    rule: rule.rule.name,
    keyClass: rule.keyClass,
    per,
    limit: plan.limit,
    windowS: plan.spec.durationS,
    retryAfterMs: Math.max(1, res.msBeforeNext),
    what: plan.what,
  };
}

/** The rules that count this request, with its key under each and that key in words (never its value). */
function counted(rules: readonly CompiledRule[], subject: LimitSubject) {
  if (!counts(subject)) return [];
  const out = [];
  for (const c of rules) {
    if (c.match && !c.match(subject)) continue;
    const key = c.key(subject);
    const per = c.keyClass === 'expression' ? c.per : isAnonymous(subject.identity) ? 'client address' : 'identity';
    if (key) out.push({ c, key, per });
  }
  return out;
}

export async function createLimiter(o: LimiterOptions): Promise<Limiter> {
  const metrics = limitMetrics(o.registry);
  const store = await openStore(o, metrics);
  const rules: CompiledRule[] = o.rules.map((rule) => {
    const key = o.keys.get(rule.name);
    const match = o.matches?.get(rule.name);
    return {
      rule,
      key: key ?? identityKey,
      ...(match ? { match } : {}),
      keyClass: key ? 'expression' : 'identity',
      per: key ? (rule.key ?? 'key') : 'identity',
      counters: counterPlans(rule).map((plan) => ({ plan, counter: store.counter(plan.spec) })),
    };
  });
  return {
    applies: () => rules.length > 0,
    async check(subject) {
      const todo = counted(rules, subject);
      if (todo.length === 0) return { ok: true };
      if (store.state().state !== 'ready' && store.kind === 'redis')
        metrics.fallbacks.inc({ store: store.kind, fail_mode: o.store.failMode });
      // All counters at once: with Redis, ioredis sends them in one pipelined round trip.
      const outcomes = await Promise.all(
        todo.flatMap(({ c, key, per }) => c.counters.map(({ plan, counter }) => consume(c, plan, counter, key, per))),
      );
      const verdict = verdictOf(outcomes);
      // A refused request spends nothing: the counters that admitted it get their point back (the
      // pace refusing must not eat the hour's count, nor a client's retries of a 429 its quota).
      if (!verdict.ok && !('unavailable' in verdict))
        await Promise.all(outcomes.map((o) => o.kind === 'ok' && o.undo().catch(() => undefined)));
      const place = subject.request.kind === 'token' ? 'token' : 'registry';
      for (const { c } of todo) {
        const refusedHere = !verdict.ok && 'rule' in verdict && verdict.rule === c.rule.name;
        const result = verdict.ok
          ? 'allowed'
          : 'unavailable' in verdict
            ? 'unavailable'
            : refusedHere
              ? 'limited'
              : 'allowed';
        metrics.decisions.inc({ rule: c.rule.name, place, key_class: c.keyClass, result });
      }
      return verdict;
    },
    state: () => store.state(),
    close: () => store.close(),
  };
}
