import type { RateLimit } from '../config/types.js';

/** Outcome of asking a limiter for one request. */
export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number; scope: 'client' | 'global' };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets: one shared by everyone, one per client key (IP). Pure apart from the injected clock,
 * so the arithmetic is unit-tested exactly. Per-client buckets live in a bounded map: when it is full,
 * buckets that have refilled completely (indistinguishable from new ones) are dropped first, then the
 * oldest, so a scan of many source addresses cannot grow memory.
 */
export function createRateLimiter(perClient: RateLimit, global: RateLimit, opts: { now?: () => number; maxClients?: number } = {}) {
  const now = opts.now ?? (() => performance.now());
  const maxClients = opts.maxClients ?? 10_000;
  const clients = new Map<string, Bucket>();
  const shared: Bucket = { tokens: global.burst, at: now() };

  function refill(b: Bucket, limit: RateLimit, t: number): void {
    b.tokens = Math.min(limit.burst, b.tokens + ((t - b.at) / 1000) * limit.rate);
    b.at = t;
  }
  function wait(b: Bucket, limit: RateLimit): number {
    return Math.max(1, Math.ceil((1 - b.tokens) / limit.rate));
  }
  function evict(t: number): void {
    for (const [k, b] of clients) {
      refill(b, perClient, t);
      if (b.tokens >= perClient.burst) clients.delete(k);
    }
    for (const k of clients.keys()) {
      if (clients.size < maxClients) break;
      clients.delete(k);
    }
  }

  return {
    admit(client: string): Admission {
      const t = now();
      let mine: Bucket | undefined;
      if (perClient.rate > 0) {
        mine = clients.get(client);
        if (!mine) {
          if (clients.size >= maxClients) evict(t);
          mine = { tokens: perClient.burst, at: t };
          clients.set(client, mine);
        } else refill(mine, perClient, t);
        if (mine.tokens < 1) return { ok: false, retryAfterSeconds: wait(mine, perClient), scope: 'client' };
      }
      if (global.rate > 0) {
        refill(shared, global, t);
        if (shared.tokens < 1) return { ok: false, retryAfterSeconds: wait(shared, global), scope: 'global' };
        shared.tokens -= 1;
      }
      if (mine) mine.tokens -= 1;
      return { ok: true };
    },
    /** Number of per-client buckets held (tests check the bound). */
    size: () => clients.size,
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
