import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** What a verification cache holds right now (for tests and diagnostics). */
export interface CacheUsage {
  entries: number;
  /** Accounted bytes (see tokenEntryBytes), never above maxBytes. */
  bytes: number;
  maxBytes: number;
}

/** What a loader hands the cache: the value, when it stops being valid, and the token it is sized by. */
export interface CacheFill<V> {
  value: V;
  /** Epoch ms (on the cache's clock) from which the value must not be used; Infinity: only evicted. */
  until: number;
  /** The token (or header) the value comes from: the entry is accounted by its size. */
  token: string;
}

/** Default byte budget of each verification cache (identity tokens; our registry tokens). */
export const DEFAULT_CACHE_MAX_BYTES = 32 * 1024 * 1024;
const ENTRY_OVERHEAD_BYTES = 512;

/**
 * What caching the verification result of `token` is accounted as. The result is the token's
 * claims parsed into objects, so it grows with the token: counting entries let 10 000 16-KiB tokens
 * hold ~200 MB. Twice the token's length (its claims are ¾ of it as JSON; parsed objects cost more
 * than their text) plus a fixed overhead (hash key, map node, result object) errs on the high side.
 */
export function tokenEntryBytes(token: string): number {
  return ENTRY_OVERHEAD_BYTES + 2 * token.length;
}

/**
 * The one cache of the proxy's token work (identity verifications, registry-token verifications,
 * upstream tokens): least-recently-used, bounded by accounted bytes, each entry with its own
 * expiry on an injectable clock, and one load per key at a time. Keys are stored as SHA-256 hashes,
 * so a token is never a map key and a long scope list costs 43 bytes. Eviction only ever costs a
 * re-verification or a re-fetch, never a wrong answer.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- lru-cache's own bound on values (non-nullish)
export class TokenCache<V extends {}> {
  private readonly lru: LRUCache<string, V>;
  private readonly inflight = new Map<string, Promise<V>>();

  constructor(
    readonly maxBytes: number = DEFAULT_CACHE_MAX_BYTES,
    private readonly now: () => number = Date.now,
  ) {
    // ttlResolution 0: lru-cache would otherwise reuse one clock reading for 1 ms, hiding a test clock's jump.
    this.lru = new LRUCache<string, V>({ maxSize: maxBytes, perf: { now: () => this.now() }, ttlResolution: 0 });
  }

  get(key: string): V | undefined {
    return this.lru.get(hashKey(key));
  }

  /** Keeps `value` until `until` (exclusive); one already expired, or larger than the whole budget, is not cached. */
  set(key: string, value: V, token: string, until = Infinity): void {
    this.store(hashKey(key), value, token, until);
  }

  delete(key: string): void {
    this.lru.delete(hashKey(key));
  }

  /**
   * The cached value of `key`, else `load()`'s — loaded once however many callers ask at the same
   * time (a burst of pulls with one token costs one verification, one upstream token fetch). A
   * failed load is not cached: every waiting caller gets its error, the next one tries again.
   */
  getOrLoad(key: string, load: () => Promise<CacheFill<V>>): Promise<V> {
    const h = hashKey(key);
    const hit = this.lru.get(h);
    if (hit !== undefined) return Promise.resolve(hit);
    let pending = this.inflight.get(h);
    if (!pending) {
      pending = load()
        .then(({ value, until, token }) => {
          this.store(h, value, token, until);
          return value;
        })
        .finally(() => this.inflight.delete(h));
      this.inflight.set(h, pending);
    }
    return pending;
  }

  usage(): CacheUsage {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.maxBytes };
  }

  private store(hashed: string, value: V, token: string, until: number): void {
    const start = this.now();
    // lru-cache keeps an entry while now - start <= ttl: one ms less makes it stale from `until` on (clocks count whole ms).
    const ttl = until - start - 1;
    if (!(ttl > 0)) {
      this.lru.delete(hashed);
      return;
    }
    this.lru.set(hashed, value, { size: tokenEntryBytes(token), ...(ttl === Infinity ? {} : { ttl, start }) });
  }
}

function hashKey(key: string): string {
  return hash('sha256', key, 'base64url');
}
