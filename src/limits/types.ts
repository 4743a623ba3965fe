import type { Identity } from '../identity/types.js';

/**
 * One Limiter over rate-limiter-flexible, whatever the store (memory, the cluster primary, Redis):
 * /token and the /v2/ guard ask it the same question and get a value back.
 */

/** Where a request is counted: the token endpoint or the registry API. */
export type LimitPlace = 'token' | 'registry';

/**
 * What `key` and `match` expressions see (the policy's CEL variables): at /token `request.kind` is
 * "token" and the repository fields are empty; at /v2/ the route's kind (manifest, blob, upload,
 * tags, referrers, catalog, ping), method and reference.
 */
export interface LimitSubject {
  identity: Identity;
  request: {
    type: string;
    repository: string;
    actions: string[];
    service: string;
    clientIP: string;
    upstream: string;
    kind: string;
    method: string;
    reference: string;
  };
}

/** A rule's key for one request; undefined or '' = this rule does not count the request. */
export type KeyFn = (subject: LimitSubject) => string | undefined;

/** A rule's `match`: whether it counts the request at all. */
export type MatchFn = (subject: LimitSubject) => boolean;

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
      /** The rule that refused and how it is keyed (identity | expression): never the key itself. */
      rule: string;
      keyClass: string;
      /** What the key is, in words: "identity", "identity.namespace". */
      per: string;
      limit: number;
      windowS: number;
      retryAfterMs: number;
      /** What the limit counts, for the message: "60 per 1h", "10 per 10m (bursts of 60 per 1h)". */
      what: string;
    }
  | { ok: false; unavailable: string };

/** The store's health, as /readyz and the logs name it. */
export interface StoreState {
  store: 'memory' | 'cluster' | 'redis';
  state: 'ready' | 'connecting' | 'unreachable';
  failMode?: 'open' | 'closed';
}

export interface Limiter {
  /** True when some rule may count at `place` (a rule's match is only known per request). */
  applies(place: LimitPlace): boolean;
  check(subject: LimitSubject): Promise<Verdict>;
  state(): StoreState;
  close(): Promise<void>;
}
