import { RateLimiterRes } from 'rate-limiter-flexible';
import type { LimitRule, LimitStoreConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { limitMetrics, type LimitMetrics } from './metrics.js';
import { costOf, counterPlans, identityKey, storedKey, type CounterPlan } from './rules.js';
import { clusterStore, memoryStore, redisStore, type Counter, type Store } from './store.js';
import type { Charge, Headroom, KeyFn, Limiter, LimitPlace, LimitSubject, StoreState, Verdict } from './types.js';
import type { Registry } from 'prom-client';

interface CompiledRule {
  rule: LimitRule;
  key: KeyFn;
  keyClass: 'identity' | 'expression';
  counters: { plan: CounterPlan; counter: Counter }[];
}

type Outcome =
  | { kind: 'ok'; res: RateLimiterRes; plan: CounterPlan; rule: CompiledRule }
  | { kind: 'over'; res: RateLimiterRes; plan: CounterPlan; rule: CompiledRule; who: string }
  | { kind: 'failed'; err: Error };

interface LimiterOptions {
  rules: readonly LimitRule[];
  store: LimitStoreConfig;
  kind: StoreState['store'];
  /** Compiled `key` expressions by rule name (policy/limit-key.ts); absent: issuer + subject. */
  keys: ReadonlyMap<string, KeyFn>;
  logger: Logger;
  registry?: Registry;
}

function openStore(o: LimiterOptions, metrics: LimitMetrics): Store {
  if (o.kind === 'redis')
    return redisStore(o.store, o.logger, (s) => metrics.storeUp.set({ store: s.store }, s.state === 'ready' ? 1 : 0));
  if (o.kind === 'cluster') return clusterStore(o.store.timeout);
  return memoryStore();
}

async function consume(
  c: CompiledRule,
  plan: CounterPlan,
  counter: Counter,
  key: string,
  cost: number,
): Promise<Outcome> {
  try {
    return { kind: 'ok', res: await counter.consume(storedKey(key), cost), plan, rule: c };
  } catch (err) {
    if (err instanceof RateLimiterRes) return { kind: 'over', res: err, plan, rule: c, who: key };
    return { kind: 'failed', err: err as Error };
  }
}

/** The verdict of one request's outcomes: a store failure, else the refusal that lasts longest, else the least headroom. Pure. */
function verdictOf(outcomes: readonly Outcome[]): Verdict {
  const failed = outcomes.find((o) => o.kind === 'failed');
  if (failed) return { ok: false, unavailable: failed.err.message };
  let over: Extract<Outcome, { kind: 'over' }> | undefined;
  let headroom: Headroom | undefined;
  for (const o of outcomes) {
    if (o.kind === 'over' && (!over || o.res.msBeforeNext > over.res.msBeforeNext)) over = o;
    if (o.kind !== 'ok') continue;
    const h = {
      rule: o.rule.rule.name,
      limit: o.plan.limit,
      remaining: Math.max(0, o.res.remainingPoints),
      resetMs: o.res.msBeforeNext,
      windowS: o.plan.spec.durationS,
    };
    if (!headroom || h.remaining < headroom.remaining) headroom = h;
  }
  if (!over) return { ok: true, ...(headroom ? { headroom } : {}) };
  const { rule, plan, res, who } = over;
  return {
    ok: false,
    rule: rule.rule.name,
    who,
    keyClass: rule.keyClass,
    limit: plan.limit,
    windowS: plan.spec.durationS,
    retryAfterMs: Math.max(1, res.msBeforeNext),
    what: plan.what,
  };
}

/** The rules that count this request, with its key under each. */
function counted(
  rules: readonly CompiledRule[],
  subject: LimitSubject,
  charge: Charge,
): { c: CompiledRule; key: string; cost: number }[] {
  const out = [];
  for (const c of rules) {
    if (!c.rule.at.includes(charge.place)) continue;
    if (charge.place === 'registry' && c.rule.upstreams && !c.rule.upstreams.includes(subject.request.upstream))
      continue;
    const cost = costOf(c.rule, charge);
    const key = cost > 0 ? c.key(subject) : undefined;
    if (key) out.push({ c, key, cost });
  }
  return out;
}

export function createLimiter(o: LimiterOptions): Limiter {
  const metrics = limitMetrics(o.registry);
  const store = openStore(o, metrics);
  const rules: CompiledRule[] = o.rules.map((rule) => ({
    rule,
    key: o.keys.get(rule.name) ?? identityKey,
    keyClass: o.keys.has(rule.name) ? 'expression' : 'identity',
    counters: counterPlans(rule).map((plan) => ({ plan, counter: store.counter(plan.spec) })),
  }));
  return {
    applies: (place: LimitPlace) => rules.some((c) => c.rule.at.includes(place)),
    async check(subject, charge) {
      const todo = counted(rules, subject, charge);
      if (todo.length === 0) return { ok: true };
      if (store.state().state !== 'ready' && store.kind === 'redis')
        metrics.fallbacks.inc({ store: store.kind, failure: o.store.failure });
      // All counters at once: with Redis, ioredis sends them in one pipelined round trip.
      const outcomes = await Promise.all(
        todo.flatMap(({ c, key, cost }) => c.counters.map(({ plan, counter }) => consume(c, plan, counter, key, cost))),
      );
      const verdict = verdictOf(outcomes);
      for (const { c } of todo) {
        const refusedHere = !verdict.ok && 'rule' in verdict && verdict.rule === c.rule.name;
        const result = verdict.ok
          ? 'allowed'
          : 'unavailable' in verdict
            ? 'unavailable'
            : refusedHere
              ? 'limited'
              : 'allowed';
        metrics.decisions.inc({ rule: c.rule.name, place: charge.place, key_class: c.keyClass, result });
      }
      return verdict;
    },
    state: () => store.state(),
    close: () => store.close(),
  };
}
