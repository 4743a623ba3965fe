import { Counter, Gauge, Registry } from 'prom-client';

/** Per rule and key class, never per key: a key is an identity (or what a claim says) and unbounded. */
export function limitMetrics(registry = new Registry()) {
  return {
    decisions: new Counter({
      name: 'rap_limit_decisions_total',
      help: 'Requests counted by limits.rules, by rule, place (token, registry), key class (identity, expression) and result (allowed, limited, unavailable)',
      labelNames: ['rule', 'place', 'key_class', 'result'] as const,
      registers: [registry],
    }),
    storeUp: new Gauge({
      name: 'rap_limit_store_up',
      help: 'Whether the shared rate-limit store (Redis) answers: 1 yes, 0 no',
      labelNames: ['store'] as const,
      aggregator: 'min',
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'rap_limit_store_fallbacks_total',
      help: 'Requests counted while the rate-limit store was unreachable (failMode open: limited per process; closed: refused with 503)',
      labelNames: ['store', 'fail_mode'] as const,
      registers: [registry],
    }),
  };
}

export type LimitMetrics = ReturnType<typeof limitMetrics>;
