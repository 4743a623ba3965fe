import { LRUCache } from 'lru-cache';

/** What a verification cache holds right now (for tests and diagnostics). */
export interface CacheUsage {
  entries: number;
  /** Accounted bytes (see tokenEntryBytes), never above maxBytes. */
  bytes: number;
  maxBytes: number;
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
 * A least-recently-used cache bounded by accounted bytes, keyed by a token hash. Callers keep their
 * own expiry check (a token's `exp`, against their injectable clock); eviction only ever costs a
 * re-verification, never a wrong answer.
 */
export class TokenCache<V extends {}> {
  private readonly lru: LRUCache<string, V>;
  constructor(readonly maxBytes: number = DEFAULT_CACHE_MAX_BYTES) {
    this.lru = new LRUCache<string, V>({ maxSize: maxBytes });
  }
  get(key: string): V | undefined {
    return this.lru.get(key);
  }
  /** An entry larger than the whole budget is simply not cached. */
  set(key: string, value: V, token: string): void {
    this.lru.set(key, value, { size: tokenEntryBytes(token) });
  }
  delete(key: string): void {
    this.lru.delete(key);
  }
  usage(): CacheUsage {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.maxBytes };
  }
}
