import type { JSONWebKeySet } from 'jose';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { originOf, type HttpClient } from './http.js';
import { IdentityError } from './types.js';
import { hasKid, localResolver, type KeyResolver, type KeySource } from './verification-keys.js';

/** Minimum time between two JWKS fetches of one issuer: a flood of unknown `kid`s cannot hammer it. */
const DEFAULT_REFETCH_INTERVAL_MS = 10_000;
/** Keys are refreshed in the background at most this old, so removed keys stop verifying. */
const DEFAULT_MAX_AGE_MS = 10 * 60_000;

interface OidcKeySourceOptions {
  http: HttpClient;
  logger: Logger;
  now?: () => number;
  refetchIntervalMs?: number;
  maxAgeMs?: number;
  onFetch?: (issuerName: string, ok: boolean) => void;
}

/**
 * Why a `jwks_uri` named by discovery is not followed, or undefined when it may be. Keys decide who
 * gets in, so they must come over TLS from the issuer itself: a discovery answer (or whoever can
 * alter it) must not be able to move key fetching to another origin or to plain http. Operators
 * whose issuer really publishes keys elsewhere (Google, self-managed Kubernetes) say so with
 * `jwksURI`, which is never second-guessed. Pure.
 */
export function discoveredJwksProblem(issuer: string, jwksURI: string): string | undefined {
  let u: URL;
  try {
    u = new URL(jwksURI);
  } catch {
    return `jwks_uri ${JSON.stringify(jwksURI.slice(0, 200))} is not a URL`;
  }
  const fix = 'if that is where this issuer really publishes its keys, set jwksURI for this issuer to it';
  if (u.protocol !== 'https:') return `jwks_uri ${u.href} is not https: keys are only fetched over TLS (${fix})`;
  if (u.origin !== originOf(issuer))
    return `jwks_uri ${u.href} is not on the issuer's origin ${originOf(issuer) ?? issuer}: discovered keys are only fetched from the issuer itself (${fix})`;
  return undefined;
}

/** OIDC discovery (`<issuer>/.well-known/openid-configuration`) → the `jwks_uri` it names, if acceptable. */
async function discoverJwksURI(issuer: string, http: HttpClient): Promise<string> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const res = await http.getJson(url);
  if (res.status !== 200) throw new Error(`discovery ${url}: HTTP ${res.status}`);
  const doc = res.body as Record<string, unknown> | undefined;
  if (!doc || typeof doc.jwks_uri !== 'string') throw new Error(`discovery ${url}: no jwks_uri`);
  // OIDC Discovery §4.3: the document's issuer must be exactly the one we asked for.
  if (doc.issuer !== issuer)
    throw new Error(`discovery ${url}: issuer "${String(doc.issuer)}" does not equal the configured "${issuer}"`);
  const problem = discoveredJwksProblem(issuer, doc.jwks_uri);
  if (problem) throw new Error(`discovery ${url}: ${problem}`);
  return doc.jwks_uri;
}

async function fetchJwks(jwksURI: string, http: HttpClient): Promise<JSONWebKeySet> {
  const res = await http.getJson(jwksURI);
  if (res.status !== 200) throw new Error(`JWKS ${jwksURI}: HTTP ${res.status}`);
  const doc = res.body as JSONWebKeySet | undefined;
  if (!doc || !Array.isArray(doc.keys)) throw new Error(`JWKS ${jwksURI}: no "keys" list`);
  return doc;
}

/**
 * Whether the cached keys answer a token with `kid`: yes while they are fresh and know it; else
 * fetch — unless the last attempt was too recent (a flood of unknown `kid`s must not hammer the
 * issuer), when the cached keys answer, or nothing does if there are none. Pure.
 */
function keysNeed(
  state: { jwks: JSONWebKeySet | undefined; fetchedAt: number; lastAttempt: number },
  kid: string | undefined,
  nowMs: number,
  limits: { maxAge: number; refetchInterval: number },
): 'use' | 'fetch' | 'unavailable' {
  const stale = nowMs - state.fetchedAt > limits.maxAge;
  const unknown = state.jwks !== undefined && !hasKid(state.jwks, kid);
  if (state.jwks !== undefined && !stale && !unknown) return 'use';
  if (nowMs - state.lastAttempt < limits.refetchInterval) return state.jwks === undefined ? 'unavailable' : 'use';
  return 'fetch';
}

/** One issuer's cached keys and the fetch that refreshes them: at most one under way at a time. */
class OidcKeyCache {
  jwks: JSONWebKeySet | undefined;
  resolver: KeyResolver | undefined;
  private jwksURI: string | undefined;
  private fetchedAt = 0;
  private lastAttempt = -Infinity;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly limits: { maxAge: number; refetchInterval: number };

  constructor(
    private readonly issuer: IssuerConfig,
    private readonly options: OidcKeySourceOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.limits = {
      maxAge: options.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
      refetchInterval: options.refetchIntervalMs ?? DEFAULT_REFETCH_INTERVAL_MS,
    };
    this.jwksURI = issuer.jwksURI;
  }

  refreshOnce(): Promise<void> {
    const { issuer, options } = this;
    this.inflight ??= this.load()
      .then(
        () => options.onFetch?.(issuer.name, true),
        (err: unknown) => {
          options.onFetch?.(issuer.name, false);
          throw err;
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  /** Makes sure the cached keys may answer a token with `kid` (see keysNeed), fetching if they must. */
  async ensure(kid: string | undefined): Promise<void> {
    const { issuer, options } = this;
    // A fetch already under way (start-up warm-up, a concurrent request) answers for this one too.
    if (this.inflight) await this.inflight.catch(() => undefined);
    const next = keysNeed(
      { jwks: this.jwks, fetchedAt: this.fetchedAt, lastAttempt: this.lastAttempt },
      kid,
      this.now(),
      this.limits,
    );
    if (next === 'use') return;
    if (next === 'unavailable')
      throw new IdentityError(
        'issuer_unavailable',
        `keys of issuer ${issuer.issuer} are not available yet (last fetch failed; retrying shortly)`,
        issuer.name,
      );
    try {
      await this.refreshOnce();
    } catch (err) {
      options.logger.warn({ issuer: issuer.name, err: (err as Error).message }, 'fetching issuer keys failed');
      // The cause (URLs, socket errors of the inside) is for the log and the operator's CLI, not for /token's anonymous caller.
      if (this.jwks === undefined)
        throw new IdentityError(
          'issuer_unavailable',
          `keys of issuer ${issuer.issuer} could not be fetched (the proxy's log says why); try again shortly`,
          issuer.name,
          (err as Error).message,
        );
      // keep verifying with the cached keys while the issuer is down
    }
  }

  private async load(): Promise<void> {
    const { issuer, options } = this;
    this.lastAttempt = this.now();
    if (!this.jwksURI) this.jwksURI = await discoverJwksURI(issuer.issuer, options.http);
    const doc = await fetchJwks(this.jwksURI, options.http);
    [this.jwks, this.resolver, this.fetchedAt] = [doc, localResolver(doc), this.now()];
    options.logger.info({ issuer: issuer.name, keys: doc.keys.length }, 'issuer keys loaded');
  }
}

/**
 * OIDC discovery (`<issuer>/.well-known/openid-configuration`) → `jwks_uri` → JWKS, cached.
 * An unknown `kid` triggers a refetch (rate-limited); keys missing from a refetched JWKS are gone.
 */
export function oidcKeySource(issuer: IssuerConfig, options: OidcKeySourceOptions): KeySource {
  const cache = new OidcKeyCache(issuer, options);
  return {
    ready: () => cache.jwks !== undefined,
    refresh: () => cache.refreshOnce(),
    resolver: async (header, token) => {
      await cache.ensure(header.kid);
      return cache.resolver!(header, token);
    },
  };
}
