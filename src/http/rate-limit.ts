import { LRUCache } from 'lru-cache';
import type { RateLimit } from '../config/types.js';

/** The budget that refused a request: the caller's address, its verified identity, or everyone's together. */
export type LimitBucket = 'address' | 'identity' | 'global';

/**
 * Outcome of asking a limiter for one request. `repeat`: that bucket has refused since it last
 * admitted anything, so the refusal was already audited (a flood is logged once, not per request).
 */
export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number; bucket: LimitBucket; repeat: boolean };

/** The /token budgets (config `limits.tokenPerClient`, `tokenPerIdentity`, `tokenGlobal`). */
interface TokenLimits {
  /** Attempts not (yet) proven to come from a verified identity, per client IP. */
  perAddress: RateLimit;
  /** Verified callers, per identity (issuer + subject). */
  perIdentity: RateLimit;
  /** Every request admitted to do work, all clients together. */
  global: RateLimit;
}

interface Bucket {
  tokens: number;
  at: number;
  refusing: boolean;
}

const fullBucket = (limit: RateLimit, t: number): Bucket => ({ tokens: limit.burst, at: t, refusing: false });

function refill(b: Bucket, limit: RateLimit, t: number): void {
  b.tokens = Math.min(limit.burst, b.tokens + ((t - b.at) / 1000) * limit.rate);
  b.at = t;
}

function refusal(b: Bucket, limit: RateLimit, bucket: LimitBucket): Admission {
  const repeat = b.refusing;
  b.refusing = true;
  return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / limit.rate)), bucket, repeat };
}

function take(b: Bucket): void {
  b.tokens -= 1;
  b.refusing = false;
}

/**
 * Token buckets for /token: per address, per identity, and one shared by everyone. Pure apart from
 * the injected clock, so the arithmetic is unit-tested exactly. Keyed buckets live in bounded LRU
 * maps, so a scan of many source addresses or a flood of identities cannot grow memory; an evicted
 * bucket comes back full, and the least recently used one is almost always refilled already.
 *
 * Why two keyed budgets: verifying an identity token is the expensive part (signature, JWKS refetch
 * on an unknown kid, a TokenReview call), so every attempt that is not yet known to be valid is
 * admitted against its address before any of that runs (admitAddress). One that proves an identity
 * gets that token back and is charged to its identity instead (settleVerified), and a token already
 * verified (cached, so cheap) never touches its address (admitIdentity). So a flood of bad tokens
 * from one address is throttled without charging verified callers there, and the CI jobs behind one
 * NAT address each have their own budget. The address is charged up front, not after the verdict,
 * so concurrent bad attempts cannot all slip past a check that has not been charged yet.
 *
 * The state is per process: with `workers`, each worker has its own buckets (docs/operations.md: Workers).
 */
export function createRateLimiter(limits: TokenLimits, opts: { now?: () => number; maxKeys?: number } = {}) {
  const now = opts.now ?? (() => performance.now());
  const maxKeys = opts.maxKeys ?? 10_000;
  const addresses = new LRUCache<string, Bucket>({ max: maxKeys });
  const identities = new LRUCache<string, Bucket>({ max: maxKeys });
  const shared = fullBucket(limits.global, now());

  /** The key's bucket, refilled to `t`; undefined when that limit is off (rate 0). */
  function bucketOf(map: LRUCache<string, Bucket>, limit: RateLimit, key: string, t: number): Bucket | undefined {
    if (limit.rate <= 0) return undefined;
    let b = map.get(key);
    if (b) refill(b, limit, t);
    else map.set(key, (b = fullBucket(limit, t)));
    return b;
  }

  /** One token from `own` and one from the global bucket, or neither (a refused request pays nothing). */
  function admit(own: Bucket | undefined, limit: RateLimit, bucket: LimitBucket, t: number): Admission {
    if (own && own.tokens < 1) return refusal(own, limit, bucket);
    if (limits.global.rate > 0) {
      refill(shared, limits.global, t);
      if (shared.tokens < 1) return refusal(shared, limits.global, 'global');
      take(shared);
    }
    if (own) take(own);
    return { ok: true };
  }

  return {
    /** Before verifying anything: an attempt not known to come from a verified identity. */
    admitAddress(address: string): Admission {
      const t = now();
      return admit(bucketOf(addresses, limits.perAddress, address, t), limits.perAddress, 'address', t);
    },
    /** A caller whose token was already verified (cached): its identity and the global budget pay. */
    admitIdentity(identity: string): Admission {
      const t = now();
      return admit(bucketOf(identities, limits.perIdentity, identity, t), limits.perIdentity, 'identity', t);
    },
    /**
     * An attempt admitAddress let through proved `identity`: the address gets its token back and the
     * identity pays instead. The global budget keeps its token, as the verification was done.
     */
    settleVerified(address: string, identity: string): Admission {
      const t = now();
      const mine = addresses.get(address);
      if (mine) {
        refill(mine, limits.perAddress, t);
        mine.tokens = Math.min(limits.perAddress.burst, mine.tokens + 1);
      }
      const own = bucketOf(identities, limits.perIdentity, identity, t);
      if (own && own.tokens < 1) return refusal(own, limits.perIdentity, 'identity');
      if (own) take(own);
      return { ok: true };
    },
    /** Keyed buckets held (tests check the bound). */
    size: () => ({ addresses: addresses.size, identities: identities.size }),
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
