import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import {
  BurstyRateLimiter,
  RateLimiterCluster,
  RateLimiterClusterMaster,
  RateLimiterMemory,
  RateLimiterRedis,
  type RateLimiterAbstract,
  type RateLimiterRes,
} from 'rate-limiter-flexible';
import type { Config, LimitStoreConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { StoreState } from './types.js';

/**
 * Where counters live, through rate-limiter-flexible: this process's memory, the cluster primary
 * (over node:cluster IPC), or Redis/Valkey (one Lua call per counter; ioredis pipelines the
 * counters of one request into one round trip). A cluster or fail-open Redis counter has an
 * in-process insurance counter that takes over while the store does not answer.
 */

export interface Counter {
  /** Resolves when within the limit, rejects with a RateLimiterRes when over it, with an Error when the store failed. */
  consume(key: string, points: number): Promise<RateLimiterRes>;
}

export interface CounterSpec {
  prefix: string;
  points: number;
  durationS: number;
  /** Extra points over a longer window on top (a burst). */
  burst?: { points: number; durationS: number };
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
  const { type, redis } = config.limits.store;
  if (type) return type;
  if (redis) return 'redis';
  return config.workers === 1 ? 'memory' : 'cluster';
}

/** The primary of `workers: N` holds the counters of a cluster store (rate-limiter-flexible's master). */
export function startClusterCounters(): void {
  new RateLimiterClusterMaster();
}

type Make = (opts: { keyPrefix: string; points: number; duration: number }) => RateLimiterAbstract;

function build(make: Make, spec: CounterSpec): Counter {
  const main = make({ keyPrefix: spec.prefix, points: spec.points, duration: spec.durationS });
  if (!spec.burst) return main;
  const extra = make({ keyPrefix: `${spec.prefix}:burst`, ...spec.burst, duration: spec.burst.durationS });
  return new BurstyRateLimiter(main, extra);
}

export function memoryStore(): Store {
  return {
    kind: 'memory',
    counter: (spec) => build((o) => new RateLimiterMemory(o), spec),
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
    counter: (spec) =>
      build((o) => new RateLimiterCluster({ ...o, timeoutMs, insuranceLimiter: new RateLimiterMemory(o) }), spec),
    state: () => ({ store: 'cluster', state: 'ready' }),
    close: async () => undefined,
  };
}

function redisOptions(store: LimitStoreConfig): RedisOptions {
  const redis = store.redis!;
  const url = new URL(redis.url);
  return {
    ...(redis.passwordFile ? { password: readFileSync(redis.passwordFile, 'utf8').trim() } : {}),
    ...(url.protocol === 'rediss:'
      ? { tls: { servername: url.hostname, ...(redis.caFile ? { ca: readFileSync(redis.caFile) } : {}) } }
      : {}),
    // Fail fast while disconnected (the insurance counter or a 503 answers), and reconnect forever.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: store.timeout,
    connectTimeout: Math.max(1000, store.timeout),
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
}

/** Redis/Valkey; `onChange` hears every change of reachability (logs, metrics). */
export function redisStore(store: LimitStoreConfig, logger: Logger, onChange: (s: StoreState) => void): Store {
  const client = new Redis(store.redis!.url, redisOptions(store));
  const failOpen = store.failure === 'fail-open';
  let current: StoreState['state'] = 'connecting';
  const state = (): StoreState => ({ store: 'redis', state: current, failure: store.failure });
  const become = (next: StoreState['state'], err?: Error) => {
    if (next === current) return;
    current = next;
    const fields = { store: 'redis', failure: store.failure, ...(err ? { err: err.message } : {}) };
    if (next === 'ready') logger.info(fields, 'rate-limit store reachable: counting shared again');
    else
      logger.warn(
        fields,
        failOpen
          ? 'rate-limit store unreachable: limiting per process meanwhile'
          : 'rate-limit store unreachable: answering 503',
      );
    onChange(state());
  };
  client.on('ready', () => become('ready'));
  client.on('error', (err: Error) => become('unreachable', err));
  client.on('close', () => become('unreachable'));
  return {
    kind: 'redis',
    counter: (spec) =>
      build(
        (o) =>
          new RateLimiterRedis({
            ...o,
            storeClient: client,
            rejectIfRedisNotReady: true,
            ...(failOpen ? { insuranceLimiter: new RateLimiterMemory(o) } : {}),
          }),
        spec,
      ),
    state,
    close: async () => {
      client.disconnect();
    },
  };
}
