import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { findDuplicateMember } from './duplicate-members.js';
import { createHttpClient, originOf, type HttpClient } from './http.js';
import type { KeySource } from './keys.js';
import { oidcKeySource } from './oidc.js';
import { identityFromClaims } from './presets.js';
import { staticKeySource } from './static-keys.js';
import { TokenCache, type CacheUsage } from './token-cache.js';
import { createTokenReviewer, tokenReviewTarget, type TokenReviewer } from './token-review.js';
import { IdentityError, type Identity, type IdentityVerifier, type VerifyOptions } from './types.js';

export const MAX_TOKEN_BYTES = 16 * 1024;
/** Asymmetric algorithms only: never `none`, never HMAC (a public key must not become an HMAC secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
/** Headers that would let a token name its own key (RFC 8725 §3.10): refused on identity tokens. */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
export const LEGACY_KUBERNETES_ISSUER = 'kubernetes/serviceaccount';

interface IssuerRuntime {
  config: IssuerConfig;
  keys?: KeySource;
  reviewer?: TokenReviewer;
  http?: HttpClient;
}

export interface VerifierOptions {
  logger: Logger;
  /** Epoch milliseconds; injectable for tests. */
  now?: () => number;
  refetchIntervalMs?: number;
  /** Replaces the TokenReview client (tests). */
  tokenReviewerFor?: (issuer: IssuerConfig) => TokenReviewer;
  /** Told about every JWKS fetch (metrics). */
  onKeysFetched?: (issuerName: string, ok: boolean) => void;
  /** Byte budget of the verification cache (default DEFAULT_CACHE_MAX_BYTES). */
  cacheMaxBytes?: number;
}

/**
 * Where an issuer's `bearerTokenFile` may be sent: the issuer's own origin, the API server in-cluster
 * mode found, the TokenReview URL. Never a `jwks_uri` elsewhere — not even a configured one, since
 * the token is a credential for the cluster, not for whoever serves the keys. Pure (env aside).
 */
export function bearerTokenOrigins(cfg: IssuerConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  const urls = [cfg.issuer];
  if (cfg.apiServer) urls.push(cfg.apiServer);
  if (cfg.tokenReview) {
    try {
      urls.push(tokenReviewTarget(cfg.tokenReview, env).url);
    } catch {
      // no TokenReview target outside a pod: nothing to add
    }
  }
  return [...new Set(urls.map(originOf).filter((o): o is string => o !== undefined))];
}

/** Verifies identity tokens against the configured issuers only (RFC 8725; PROTOCOLS.md "JWT verification"). */
export function createIdentityVerifier(issuers: IssuerConfig[], options: VerifierOptions): IdentityVerifier & { cacheUsage(): CacheUsage } {
  const now = options.now ?? Date.now;
  const byIss = new Map<string, IssuerRuntime>();
  for (const cfg of issuers) {
    const rt: IssuerRuntime = { config: cfg };
    if (cfg.jwksFile) rt.keys = staticKeySource(cfg.jwksFile);
    else if (cfg.issuer !== LEGACY_KUBERNETES_ISSUER) {
      const origins = bearerTokenOrigins(cfg);
      if (cfg.bearerTokenFile && cfg.jwksURI && !origins.includes(originOf(cfg.jwksURI) ?? '')) {
        options.logger.warn({ issuer: cfg.name, jwksURI: cfg.jwksURI }, "bearerTokenFile is not sent to this jwksURI: it is on neither the issuer's nor the API server's origin");
      }
      rt.http = createHttpClient({ caFile: cfg.caFile, bearerTokenFile: cfg.bearerTokenFile, bearerTokenOrigins: origins, timeoutMs: cfg.timeout });
      rt.keys = oidcKeySource(cfg, { http: rt.http, logger: options.logger, now, refetchIntervalMs: options.refetchIntervalMs, onFetch: options.onKeysFetched });
    }
    if (cfg.tokenReview) rt.reviewer = options.tokenReviewerFor?.(cfg) ?? createTokenReviewer(cfg.tokenReview, options.logger, undefined, cfg.timeout);
    byIss.set(cfg.issuer, rt);
  }
  const byName = new Map(issuers.map((i) => [i.name, i]));
  let closed = false;
  const retryTimers = new Set<NodeJS.Timeout>();

  /**
   * An issuer that was unreachable at start-up is retried with backoff (1 s doubling to 30 s) until
   * its keys load: readiness depends on it, and a pod that is not ready receives no request that
   * would trigger an on-demand fetch.
   */
  function retryUntilLoaded(rt: IssuerRuntime, delay: number): void {
    if (closed || !rt.keys || rt.keys.ready()) return;
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      if (closed || rt.keys!.ready()) return;
      rt.keys!.refresh().then(
        () => options.logger.info({ issuer: rt.config.name }, 'issuer keys loaded after retrying'),
        (err: unknown) => {
          const next = Math.min(delay * 2, 30_000);
          options.logger.warn({ issuer: rt.config.name, err: (err as Error).message, retryInMs: next }, 'issuer keys still not loaded');
          retryUntilLoaded(rt, next);
        },
      );
    }, delay);
    timer.unref();
    retryTimers.add(timer);
  }
  // Bounded by bytes, not entries: a verified identity is as large as its token's claims.
  const cache = new TokenCache<{ identity: Identity; until: number }>(options.cacheMaxBytes);

  async function verifyUncached(token: string, opts: VerifyOptions | undefined): Promise<{ identity: Identity; until: number }> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let payload: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      payload = decodeJwt(token);
    } catch {
      throw new IdentityError('malformed', 'the password is not a JWT: give the identity token (a signed JWT) as the registry password');
    }
    const [h64, p64] = token.split('.');
    const dup = findDuplicateMember(Buffer.from(h64!, 'base64url').toString('utf8')) ?? findDuplicateMember(Buffer.from(p64!, 'base64url').toString('utf8'));
    if (dup !== undefined) throw new IdentityError('malformed', `the identity token repeats the member ${JSON.stringify(dup.slice(0, 100))}: refused rather than guessing which one counts`);
    const iss = payload.iss;
    if (typeof iss !== 'string' || iss.length === 0) throw new IdentityError('missing_claim', 'the identity token has no "iss" claim');
    const rt = byIss.get(iss);
    if (!rt) throw new IdentityError('unknown_issuer', `issuer ${JSON.stringify(iss.slice(0, 200))} is not configured on this proxy`);
    const cfg = rt.config;
    if (opts?.issuerName !== undefined && byName.has(opts.issuerName) && opts.issuerName !== cfg.name) {
      throw new IdentityError('issuer_mismatch', `the username names issuer "${opts.issuerName}" but the token comes from "${cfg.name}"`, cfg.name);
    }
    for (const h of FORBIDDEN_HEADERS) {
      if (h in header) throw new IdentityError('forbidden_header', `identity tokens may not carry a "${h}" header: keys come from the issuer's configuration only`, cfg.name);
    }
    if (header.crit !== undefined) throw new IdentityError('forbidden_header', 'the identity token has a "crit" header this proxy does not understand', cfg.name);
    if (typeof header.alg !== 'string' || !ALLOWED_ALGORITHMS.includes(header.alg)) {
      throw new IdentityError('unsupported_algorithm', `algorithm ${JSON.stringify(String(header.alg))} is not accepted (use one of ${ALLOWED_ALGORITHMS.join(', ')})`, cfg.name);
    }

    const legacy = cfg.issuer === LEGACY_KUBERNETES_ISSUER;
    let claims: JWTPayload = payload;
    if (rt.keys) {
      try {
        const result = await jwtVerify(token, rt.keys.resolver, {
          issuer: cfg.issuer,
          audience: legacy ? undefined : cfg.audiences,
          algorithms: ALLOWED_ALGORITHMS,
          clockTolerance: cfg.clockSkew,
          currentDate: new Date(now()),
          requiredClaims: legacy ? [] : ['exp'],
        });
        claims = result.payload;
      } catch (err) {
        throw mapJoseError(err, cfg);
      }
    } else if (!rt.reviewer) {
      throw new IdentityError('issuer_unavailable', `issuer ${cfg.name} has no keys configured`, cfg.name);
    }
    const issuedAhead = futureIssuedAt(claims.iat, now(), cfg.clockSkew);
    if (issuedAhead) throw new IdentityError('not_yet_valid', issuedAhead, cfg.name);

    let until = typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity;
    if (rt.reviewer && cfg.tokenReview) {
      let review;
      try {
        // Legacy tokens are only valid for the API server's own audience: ask without audiences.
        review = await rt.reviewer.review(token, legacy ? undefined : cfg.audiences);
      } catch (err) {
        options.logger.error({ issuer: cfg.name, err: (err as Error).message }, 'TokenReview failed: refusing the token (fail closed)');
        throw new IdentityError('issuer_unavailable', 'the Kubernetes API server could not confirm the token (TokenReview failed); try again shortly', cfg.name);
      }
      if (!review.authenticated) {
        throw new IdentityError('revoked', `the Kubernetes API server rejected the token${review.error ? `: ${review.error}` : ''}`, cfg.name);
      }
      if (!legacy && review.audiences && !review.audiences.some((a) => cfg.audiences.includes(a))) {
        throw new IdentityError('wrong_audience', `the token is not valid for audience ${cfg.audiences.join(' or ')}`, cfg.name);
      }
      if (review.username && typeof claims.sub === 'string' && review.username !== claims.sub) {
        throw new IdentityError('revoked', 'the Kubernetes API server authenticated a different user than the token names', cfg.name);
      }
      until = Math.min(until, now() + cfg.tokenReview.cacheTTL);
    } else if (legacy) {
      throw new IdentityError('unknown_issuer', 'legacy service-account tokens are accepted only with tokenReview', cfg.name);
    }
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) throw new IdentityError('missing_claim', 'the identity token has no "sub" claim', cfg.name);
    const identity = identityFromClaims(claims as Record<string, unknown>, { issuerName: cfg.name, issuer: cfg.issuer, preset: cfg.preset });
    return { identity, until };
  }

  return {
    async verify(token: string, opts?: VerifyOptions): Promise<Identity> {
      if (typeof token !== 'string' || token.length === 0) throw new IdentityError('malformed', 'no identity token given');
      if (token.length > MAX_TOKEN_BYTES) throw new IdentityError('too_large', `the identity token is larger than ${MAX_TOKEN_BYTES} bytes`);
      if (!JWT_SHAPE.test(token)) throw new IdentityError('malformed', 'the password is not a JWT: give the identity token (a signed JWT) as the registry password');
      const key = createHash('sha256').update(token).digest('base64url');
      const hit = cache.get(key);
      if (hit && hit.until > now()) {
        if (opts?.issuerName !== undefined && byName.has(opts.issuerName) && opts.issuerName !== hit.identity.issuerName) {
          throw new IdentityError('issuer_mismatch', `the username names issuer "${opts.issuerName}" but the token comes from "${hit.identity.issuerName}"`, hit.identity.issuerName);
        }
        return hit.identity;
      }
      if (hit) cache.delete(key);
      const result = await verifyUncached(token, opts);
      cache.set(key, result, token);
      return result.identity;
    },
    cacheUsage: () => cache.usage(),
    ready(): boolean {
      for (const rt of byIss.values()) if (rt.keys && !rt.keys.ready()) return false;
      return true;
    },
    async warmUp(): Promise<void> {
      await Promise.all(
        [...byIss.values()].map(async (rt) => {
          try {
            await rt.keys?.refresh();
          } catch (err) {
            options.logger.warn({ issuer: rt.config.name, err: (err as Error).message }, 'issuer keys not loaded at start-up; retrying in the background');
            retryUntilLoaded(rt, 1000);
          }
        }),
      );
    },
    async close(): Promise<void> {
      closed = true;
      for (const t of retryTimers) clearTimeout(t);
      await Promise.all([...byIss.values()].flatMap((rt) => [rt.http?.close(), rt.reviewer?.close()]));
    },
  };
}

/**
 * jose checks `iat` only together with maxTokenAge, so a token stamped as issued in the future
 * (a broken or hostile issuer clock, or a token minted to stay "fresh") passes. Refused beyond the
 * issuer's clockSkew; returns the reason, or undefined. Pure.
 */
export function futureIssuedAt(iat: unknown, nowMs: number, clockSkewS: number): string | undefined {
  if (typeof iat !== 'number' || iat <= nowMs / 1000 + clockSkewS) return undefined;
  const when = Number.isFinite(iat) && Math.abs(iat) < 8.64e12 ? new Date(iat * 1000).toISOString() : String(iat);
  return `the identity token claims to be issued in the future (iat ${when}, more than ${clockSkewS}s ahead of this proxy's clock): check the clocks of the issuer and the proxy`;
}

function mapJoseError(err: unknown, cfg: IssuerConfig): IdentityError {
  if (err instanceof IdentityError) return err;
  const n = cfg.name;
  if (err instanceof joseErrors.JWTExpired) {
    const exp = typeof err.payload.exp === 'number' ? new Date(err.payload.exp * 1000).toISOString() : 'an earlier time';
    return new IdentityError('expired', `the identity token expired at ${exp}: get a fresh token`, n);
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return new IdentityError('wrong_audience', `the identity token's audience must include ${cfg.audiences.map((a) => JSON.stringify(a)).join(' or ')}: request the token for that audience`, n);
      case 'nbf':
      case 'iat':
        return new IdentityError('not_yet_valid', 'the identity token is not valid yet (nbf/iat in the future): check the clocks', n);
      case 'exp':
        return new IdentityError('missing_claim', 'the identity token has no "exp" claim: tokens without an expiry are refused', n);
      default:
        return new IdentityError('missing_claim', `the identity token's "${err.claim}" claim is invalid: ${err.reason}`, n);
    }
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new IdentityError('unknown_key', `no key of issuer ${cfg.issuer} matches the token's "kid"`, n);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new IdentityError('bad_signature', "the signature does not verify with the issuer's keys", n);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new IdentityError('unsupported_algorithm', 'the token algorithm is not accepted', n);
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JOSENotSupported) {
    return new IdentityError('malformed', `the identity token is malformed: ${(err as Error).message}`, n);
  }
  if (err instanceof joseErrors.JWKSInvalid) return new IdentityError('issuer_unavailable', `issuer ${cfg.issuer} published an invalid JWKS`, n);
  return new IdentityError('bad_signature', `the identity token could not be verified: ${(err as Error)?.message ?? String(err)}`, n);
}
