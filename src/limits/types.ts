import type { Identity } from '../identity/types.js';

/**
 * One Limiter over rate-limiter-flexible, whatever the store (memory, the cluster primary, Redis):
 * /token and the /v2/ guard ask it the same question and get a value back.
 */

/** Where a request is counted: the token endpoint or the registry API. */
export type LimitPlace = 'token' | 'registry';

/** What a key expression sees (the policy's CEL variables). */
export interface LimitSubject {
  identity: Identity;
  request: { type: string; repository: string; actions: string[]; service: string; clientIP: string; upstream: string };
}

/** A rule's key for one request; undefined or '' = this rule does not count the request. */
export type KeyFn = (subject: LimitSubject) => string | undefined;

/** The /v2/ request being counted: its route kind and method (HEAD costs nothing). */
export interface Charge {
  place: LimitPlace;
  kind?: string;
  method?: string;
}

/** The closest limit a request counted against: for RateLimit-* headers. */
export interface Headroom {
  rule: string;
  limit: number;
  remaining: number;
  resetMs: number;
  /** Length of the counter's window, seconds (`;w=` of the RateLimit headers). */
  windowS: number;
}

export type Verdict =
  | { ok: true; headroom?: Headroom }
  | {
      ok: false;
      /** The rule that refused, whose counter, and how it is keyed (identity | expression). */
      rule: string;
      who: string;
      keyClass: string;
      limit: number;
      windowS: number;
      retryAfterMs: number;
      /** What the limit counts, for the message: "6 requests per second", "60 per 1h". */
      what: string;
    }
  | { ok: false; unavailable: string };

/** The store's health, as /readyz and the logs name it. */
export interface StoreState {
  store: 'memory' | 'cluster' | 'redis';
  state: 'ready' | 'connecting' | 'unreachable';
  failure?: 'fail-open' | 'fail-closed';
}

export interface Limiter {
  /** True when some rule counts at `place`. */
  applies(place: LimitPlace): boolean;
  check(subject: LimitSubject, charge: Charge): Promise<Verdict>;
  state(): StoreState;
  close(): Promise<void>;
}
