import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Identity } from '../identity/types.js';
import { parseRefusals } from '../policy/explain.js';
import type { KeyRing } from './signing-keys.js';
import { TokenCache, type CacheUsage } from '../http/token-cache.js';
import { DEFAULT_REFRESH_TTL, REFRESH_TYP, refreshAudience, type RefreshIdentity } from './issue.js';
import {
  RegistryTokenError,
  type AccessEntry,
  type RegistryTokenVerifier,
  type VerifiedRegistryToken,
} from './types.js';

const ALGS = ['ES256', 'RS256', 'EdDSA'];
const MAX_TOKEN_BYTES = 16 * 1024;
const LEEWAY_S = 5;

interface OwnTokenOptions {
  issuer: string;
  service: string;
  now?: () => number;
  /** Refresh tokens: the current `tokens.refreshTTL` (seconds; 0 refuses them all), checked again on use. */
  refreshTTL?: number;
  /** Byte budget of the verification cache (default DEFAULT_CACHE_MAX_BYTES). */
  cacheMaxBytes?: number;
}

function keyResolver(keys: KeyRing) {
  return (header: { kid?: string }) => {
    const key = header.kid !== undefined ? keys.byKid(header.kid) : undefined;
    if (!key) throw new RegistryTokenError('token signed by a key this proxy does not have');
    return key.publicKey;
  };
}

function isAccessList(x: unknown): x is AccessEntry[] {
  return (
    Array.isArray(x) &&
    x.every(
      (e) =>
        typeof e === 'object' &&
        e !== null &&
        typeof e.type === 'string' &&
        typeof e.name === 'string' &&
        Array.isArray(e.actions) &&
        e.actions.every((a: unknown) => typeof a === 'string'),
    )
  );
}

/** Our own registry tokens, verified with no network and cached per token (a layer push of many PATCHes costs one verify). */
export function createRegistryTokenVerifier(
  keys: KeyRing,
  opts: OwnTokenOptions,
): RegistryTokenVerifier & { cacheUsage(): CacheUsage } {
  const now = opts.now ?? Date.now;
  // Bounded by bytes with least-recently-used eviction: catalog tokens carry a whole identity (`idn`),
  // and emptying the cache when full made every client re-verify at once.
  const cache = new TokenCache<VerifiedRegistryToken>(opts.cacheMaxBytes, now);
  const resolve = keyResolver(keys);
  return {
    async verify(token: string): Promise<VerifiedRegistryToken> {
      if (token.length > MAX_TOKEN_BYTES) throw new RegistryTokenError('token too large');
      return cache.getOrLoad(token, async () => {
        const verified = await verifyRegistryToken(token, resolve, opts, now());
        // Reused while jose would still accept it: until exp plus the leeway.
        return { value: verified, until: (verified.expiresAt + LEEWAY_S) * 1000, token };
      });
    },
    cacheUsage: () => cache.usage(),
  };
}

/** Signature by one of our keys, our issuer and service, a live `exp`, and a well-formed `access` claim. */
async function verifyRegistryToken(
  token: string,
  resolve: ReturnType<typeof keyResolver>,
  opts: OwnTokenOptions,
  nowMs: number,
): Promise<VerifiedRegistryToken> {
  let payload: JWTPayload;
  try {
    const header = decodeProtectedHeader(token);
    if (header.typ !== 'JWT') throw new RegistryTokenError('not a registry token');
    ({ payload } = await jwtVerify(token, resolve, {
      issuer: opts.issuer,
      audience: opts.service,
      algorithms: ALGS,
      clockTolerance: LEEWAY_S,
      currentDate: new Date(nowMs),
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    if (err instanceof RegistryTokenError) throw err;
    throw new RegistryTokenError((err as Error).message || 'invalid token');
  }
  if (!isAccessList(payload.access)) throw new RegistryTokenError('token has no valid access claim');
  return {
    subject: payload.sub!,
    access: payload.access,
    expiresAt: payload.exp!,
    identity: identityFromClaim(payload.idn, payload.exp),
    // Only ever explains a refusal (never grants): a malformed claim just means no explanation.
    refused: parseRefusals(payload.refused) ?? [],
  };
}

/** Verifies one of our refresh tokens and returns the identity it carries. */
export async function verifyRefreshToken(keys: KeyRing, token: string, opts: OwnTokenOptions): Promise<Identity> {
  if (token.length > MAX_TOKEN_BYTES) throw new RegistryTokenError('refresh token too large');
  const refreshTTL = opts.refreshTTL ?? DEFAULT_REFRESH_TTL;
  if (refreshTTL <= 0)
    throw new RegistryTokenError('refresh tokens are turned off on this proxy (tokens.refreshTTL: 0)');
  let payload: JWTPayload;
  try {
    const header = decodeProtectedHeader(token);
    if (header.typ !== REFRESH_TYP) throw new RegistryTokenError('not a refresh token of this proxy');
    ({ payload } = await jwtVerify(token, keyResolver(keys), {
      issuer: opts.issuer,
      audience: refreshAudience(opts.service),
      algorithms: ALGS,
      currentDate: new Date((opts.now ?? Date.now)()),
      // Age checked against today's refreshTTL too: lowering it cuts tokens issued under a longer one.
      maxTokenAge: refreshTTL,
      clockTolerance: LEEWAY_S,
      requiredClaims: ['exp', 'iat'],
    }));
  } catch (err) {
    if (err instanceof RegistryTokenError) throw err;
    if (err instanceof joseErrors.JWTExpired)
      throw new RegistryTokenError(
        `refresh token expired (they live at most ${refreshTTL}s, never past the identity token)`,
      );
    throw new RegistryTokenError(`refresh token invalid: ${(err as Error).message}`);
  }
  const identity = identityFromClaim(payload.idn, payload.exp);
  if (!identity) throw new RegistryTokenError('refresh token carries no identity');
  return identity;
}

/** The identity inside one of our tokens (`idn`, written by identityClaim), if it has one. */
function identityFromClaim(raw: unknown, exp: number | undefined): Identity | undefined {
  const idn = raw as RefreshIdentity | undefined;
  if (typeof idn !== 'object' || idn === null || typeof idn.issuerName !== 'string' || typeof idn.subject !== 'string')
    return undefined;
  return {
    issuerName: idn.issuerName,
    issuer: idn.issuer,
    subject: idn.subject,
    preset: idn.preset as Identity['preset'],
    namespace: idn.namespace,
    serviceAccount: idn.serviceAccount,
    podName: idn.podName,
    claims: typeof idn.claims === 'object' && idn.claims !== null ? idn.claims : {},
    expiresAt: exp,
  };
}
