import { jwtVerify, type JWTPayload } from 'jose';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { ALLOWED_ALGORITHMS, checkIssuedAt } from './checks.js';
import { createHttpClient, originOf } from './http.js';
import { joseFailure } from './jose-errors.js';
import type { KeySource } from './verification-keys.js';
import { oidcKeySource } from './oidc.js';
import { staticKeySource } from './static-keys.js';
import { tokenReviewTarget } from './token-review.js';
import type { IdentitySource } from './types.js';

export interface KeyDeps {
  logger: Logger;
  /** Epoch milliseconds. */
  now: () => number;
  refetchIntervalMs?: number;
  /** Told about every JWKS fetch (metrics). */
  onKeysFetched?: (issuerName: string, ok: boolean) => void;
}

/** An issuer's public keys, and the connection pool that fetches them (if any). */
export interface IssuerKeys extends KeySource {
  close(): Promise<void>;
}

/** What jose must check besides the signature: legacy tokens have neither an audience nor an expiry. */
interface SignatureRules {
  audience?: string[];
  requiredClaims: string[];
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

/** `jwksFile` (no network), else `jwksURI` or OIDC discovery. */
export function issuerKeys(cfg: IssuerConfig, deps: KeyDeps): IssuerKeys {
  if (cfg.jwksFile) return { ...staticKeySource(cfg.jwksFile), close: async () => {} };
  const origins = bearerTokenOrigins(cfg);
  if (cfg.bearerTokenFile && cfg.jwksURI && !origins.includes(originOf(cfg.jwksURI) ?? '')) {
    deps.logger.warn(
      { issuer: cfg.name, jwksURI: cfg.jwksURI },
      "bearerTokenFile is not sent to this jwksURI: it is on neither the issuer's nor the API server's origin",
    );
  }
  const http = createHttpClient({
    caFile: cfg.caFile,
    bearerTokenFile: cfg.bearerTokenFile,
    bearerTokenOrigins: origins,
    timeoutMs: cfg.timeout,
  });
  const keys = oidcKeySource(cfg, {
    http,
    logger: deps.logger,
    now: deps.now,
    refetchIntervalMs: deps.refetchIntervalMs,
    onFetch: deps.onKeysFetched,
  });
  return { ...keys, close: () => http.close() };
}

/** The token's signature by one of the issuer's keys, its exact `iss`, and the time claims within clockSkew. */
export async function verifySignature(
  token: string,
  keys: KeySource,
  cfg: IssuerConfig,
  nowMs: number,
  rules: SignatureRules,
): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, keys.resolver, {
      issuer: cfg.issuer,
      audience: rules.audience,
      algorithms: ALLOWED_ALGORITHMS,
      clockTolerance: cfg.clockSkew,
      currentDate: new Date(nowMs),
      requiredClaims: rules.requiredClaims,
    });
    return payload;
  } catch (err) {
    throw joseFailure(err, cfg);
  }
}

/** Epoch ms at which the claims stop being valid (Infinity without `exp`). */
export function expiryOf(claims: JWTPayload): number {
  return typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity;
}

/** An OIDC / JWT issuer: a token is valid when its issuer's keys say so, for our audience, with an `exp`. */
export function jwtSource(cfg: IssuerConfig, keys: IssuerKeys, deps: KeyDeps): IdentitySource {
  return {
    config: cfg,
    async verify(token) {
      const claims = await verifySignature(token, keys, cfg, deps.now(), {
        audience: cfg.audiences,
        requiredClaims: ['exp'],
      });
      checkIssuedAt(claims, deps.now(), cfg.clockSkew, cfg.name);
      return { claims, until: expiryOf(claims) };
    },
    ready: () => keys.ready(),
    refresh: () => keys.refresh(),
    close: () => keys.close(),
  };
}
