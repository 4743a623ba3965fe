import cluster from 'node:cluster';
import {
  RateLimiterCluster,
  RateLimiterClusterMaster,
  RateLimiterMemory,
  type RateLimiterRes,
} from 'rate-limiter-flexible';
import type { Config, LimitStoreConfig } from '../config/types.js';
import type { StoreState } from './types.js';

/**
 * Where counters live, through rate-limiter-flexible: this process's memory, the cluster primary
 * (over node:cluster IPC), or Redis/Valkey (redis-store.ts, loaded only for it: ioredis costs
 * start-up RSS a memory store never needs). A cluster counter has an in-process insurance counter
 * that takes over while the primary does not answer.
 */

export interface Counter {
  /** Resolves when within the limit, rejects with a RateLimiterRes when over it, with an Error when the store failed. */
  consume(key: string, points: number): Promise<RateLimiterRes>;
  /** Gives points back (a request another counter refused). */
  reward(key: string, points: number): Promise<unknown>;
}

export interface CounterSpec {
  prefix: string;
  points: number;
  durationS: number;
}

export interface Store {
  kind: StoreState['store'];
  counter(spec: CounterSpec): Counter;
  state(): StoreState;
  close(): Promise<void>;
}

/** Which store `limits.store` means for this config (its default depends on workers). Pure. */
export function storeKind(
  config: Pick<Config, 'workers'> & { limits: { store: LimitStoreConfig } },
): StoreState['store'] {
  const { type, url } = config.limits.store;
  if (type) return type;
  if (url) return 'redis';
  return config.workers === 1 ? 'memory' : 'cluster';
}

/** The primary of `workers: N` holds the counters of a cluster store (rate-limiter-flexible's master). */
export function startClusterCounters(): void {
  new RateLimiterClusterMaster();
}

/** rate-limiter-flexible's options of a counter. Pure. */
export const options = (spec: CounterSpec) => ({
  keyPrefix: spec.prefix,
  points: spec.points,
  duration: spec.durationS,
});

export function memoryStore(): Store {
  return {
    kind: 'memory',
    counter: (spec) => new RateLimiterMemory(options(spec)),
    state: () => ({ store: 'memory', state: 'ready' }),
    close: async () => undefined,
  };
}

/** In a worker, counters on the primary; outside a cluster (workers resolved to 1), in memory. */
export function clusterStore(timeoutMs: number): Store {
  if (!cluster.isWorker)
    return { ...memoryStore(), kind: 'cluster', state: () => ({ store: 'cluster', state: 'ready' }) };
  return {
    kind: 'cluster',
    counter: (spec) => {
      const o = options(spec);
      return new RateLimiterCluster({ ...o, timeoutMs, insuranceLimiter: new RateLimiterMemory(o) });
    },
    state: () => ({ store: 'cluster', state: 'ready' }),
    close: async () => undefined,
  };
}
