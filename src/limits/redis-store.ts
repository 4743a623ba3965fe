import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { LimitStoreConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { options, type Store } from './store.js';
import type { StoreState } from './types.js';

/**
 * Counters in Redis/Valkey (one Lua call per counter; ioredis pipelines the counters of one request
 * into one round trip). With `failMode: open` each counter has an in-process insurance counter
 * that takes over while Redis does not answer. Imported only for `type: redis` (server/limits.ts).
 */

function redisOptions(store: LimitStoreConfig): RedisOptions {
  const url = new URL(store.url!);
  return {
    ...(store.passwordFile ? { password: readFileSync(store.passwordFile, 'utf8').trim() } : {}),
    ...(url.protocol === 'rediss:'
      ? { tls: { servername: url.hostname, ...(store.caFile ? { ca: readFileSync(store.caFile) } : {}) } }
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
  const client = new Redis(store.url!, redisOptions(store));
  const failOpen = store.failMode === 'open';
  let current: StoreState['state'] = 'connecting';
  const state = (): StoreState => ({ store: 'redis', state: current, failMode: store.failMode });
  const become = (next: StoreState['state'], err?: Error) => {
    if (next === current) return;
    current = next;
    const fields = { store: 'redis', failMode: store.failMode, ...(err ? { err: err.message } : {}) };
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
    counter: (spec) => {
      const o = options(spec);
      return new RateLimiterRedis({
        ...o,
        storeClient: client,
        rejectIfRedisNotReady: true,
        ...(failOpen ? { insuranceLimiter: new RateLimiterMemory(o) } : {}),
      });
    },
    state,
    close: async () => {
      client.disconnect();
    },
  };
}
