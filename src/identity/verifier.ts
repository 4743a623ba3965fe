import type { JWTPayload } from 'jose';
import { ConfigError } from '../config/errors.js';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { checkHeader, checkPinnedIssuer, checkShape, checkSubject, decodeToken } from './checks.js';
import { identityFromClaims } from './presets.js';
import { createIdentitySource } from './sources.js';
import { KeyFileError } from './static-keys.js';
import { TokenCache, type CacheFill, type CacheUsage } from '../http/token-cache.js';
import type { TokenReviewer } from './token-review.js';
import { IdentityError, type Identity, type IdentitySource, type IdentityVerifier } from './types.js';

interface VerifierOptions {
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
  /** The config file the issuers came from, named (with the key) when a `jwksFile` cannot be used. */
  configFile?: string;
}

/**
 * Verifies identity tokens against the configured issuers only (RFC 8725; PROTOCOLS.md "JWT
 * verification"): shape and header checks, the source picked by the token's exact `iss`, then that
 * source's verdict, cached per token until it stops being valid.
 */
export function createIdentityVerifier(
  issuers: readonly IssuerConfig[],
  options: VerifierOptions,
): IdentityVerifier & { cacheUsage(): CacheUsage } {
  const now = options.now ?? Date.now;
  const sources = new Map(issuers.map((cfg, i) => [cfg.issuer, sourceOf(cfg, i, { ...options, now })]));
  const names = new Set(issuers.map((i) => i.name));
  // Bounded by bytes, not entries: a verified identity is as large as its token's claims.
  const cache = new TokenCache<Identity>(options.cacheMaxBytes, now);
  const warm = keyWarmUp(options.logger);

  return {
    async verify(token, opts) {
      checkShape(token);
      const hit = cache.get(token);
      if (hit) {
        checkPinnedIssuer(opts?.issuerName, names, hit.issuerName);
        return hit;
      }
      const { header, payload, iss } = decodeToken(token);
      const source = sources.get(iss);
      if (!source)
        throw new IdentityError(
          'unknown_issuer',
          `issuer ${JSON.stringify(iss.slice(0, 200))} is not configured on this proxy`,
        );
      checkPinnedIssuer(opts?.issuerName, names, source.config.name);
      checkHeader(header, source.config.name);
      return cache.getOrLoad(token, () => identityFrom(source, token, payload));
    },
    cached(token, opts) {
      const hit = cache.get(token);
      if (!hit) return undefined;
      try {
        checkPinnedIssuer(opts?.issuerName, names, hit.issuerName);
      } catch {
        return undefined; // a refusal: verify() says why
      }
      return hit;
    },
    cacheUsage: () => cache.usage(),
    ready: () => [...sources.values()].every((s) => s.ready()),
    warmUp: () => warm.start([...sources.values()]),
    async close() {
      warm.stop();
      await Promise.all([...sources.values()].map((s) => s.close()));
    },
  };
}

/** The source's verdict as the identity policies see, cacheable until the source says. */
async function identityFrom(source: IdentitySource, token: string, payload: JWTPayload): Promise<CacheFill<Identity>> {
  const cfg = source.config;
  const { claims, until } = await source.verify(token, payload);
  checkSubject(claims, cfg.name);
  const identity = identityFromClaims(claims as Record<string, unknown>, {
    issuerName: cfg.name,
    issuer: cfg.issuer,
    preset: cfg.preset,
  });
  return { value: identity, until, token };
}

/**
 * Fetches every issuer's keys ahead of the first request. One unreachable at start-up is retried
 * with backoff (1 s doubling to 30 s) until its keys load: readiness depends on it, and a pod that
 * is not ready receives no request that would trigger an on-demand fetch.
 */
function keyWarmUp(logger: Logger): { start(sources: IdentitySource[]): Promise<void>; stop(): void } {
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();

  function retry(source: IdentitySource, delay: number): void {
    if (stopped || source.ready()) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (stopped || source.ready()) return;
      source.refresh().then(
        () => logger.info({ issuer: source.config.name }, 'issuer keys loaded after retrying'),
        (err: unknown) => {
          const next = Math.min(delay * 2, 30_000);
          logger.warn(
            { issuer: source.config.name, err: (err as Error).message, retryInMs: next },
            'issuer keys still not loaded',
          );
          retry(source, next);
        },
      );
    }, delay);
    timer.unref();
    timers.add(timer);
  }

  return {
    async start(sources) {
      await Promise.all(
        sources.map(async (source) => {
          try {
            await source.refresh();
          } catch (err) {
            logger.warn(
              { issuer: source.config.name, err: (err as Error).message },
              'issuer keys not loaded at start-up; retrying in the background',
            );
            retry(source, 1000);
          }
        }),
      );
    },
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
    },
  };
}

/** An issuer's source; a `jwksFile` that cannot be used is a ConfigError naming the file and key. */
function sourceOf(cfg: IssuerConfig, index: number, options: VerifierOptions & { now: () => number }): IdentitySource {
  try {
    return createIdentitySource(cfg, options);
  } catch (err) {
    if (!(err instanceof KeyFileError)) throw err;
    const fix = 'fix the path (a JWKS or PEM public keys), or remove jwksFile to fetch the keys by OIDC discovery';
    throw new ConfigError(options.configFile, `issuers[${index}].jwksFile`, `${err.problem}: ${fix}`);
  }
}
