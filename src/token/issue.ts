import { randomUUID } from 'node:crypto';
import type { Identity } from '../identity/types.js';
import type { Refusal } from '../policy/explain.js';
import type { KeyRing } from './signing-keys.js';
import { signJwt } from './jws.js';
import type { AccessEntry } from '../oci/access.js';

export interface IssueOptions {
  /** `iss`: our public URL. */
  issuer: string;
  /** `aud`: the service, as a string (Distribution 2.x cannot read an array). */
  service: string;
  /** Lifetime in seconds. */
  ttl: number;
  /** Longest life of a refresh token, in seconds (`tokens.refreshTTL`); 0: none; absent: DEFAULT_REFRESH_TTL. */
  refreshTTL?: number;
  now?: () => number;
  /**
   * Every registry token carries the identity (`idn`), not only catalog ones: request-time rules
   * read it on each request, and limits at /v2/ are keyed by it.
   */
  embedIdentity?: boolean;
}

/** Refresh tokens live at most this long (seconds) unless `tokens.refreshTTL` says otherwise. */
export const DEFAULT_REFRESH_TTL = 12 * 3600;

interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
}

/** `sub` names the workload: `<issuerName>:<subject>`, never a shared provider name. */
function registrySubject(identity: Identity): string {
  return `${identity.issuerName}:${identity.subject}`;
}

/** True when `access` lets the bearer list the catalog. */
function grantsCatalog(access: AccessEntry[]): boolean {
  return access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.length > 0);
}

/**
 * Registry tokens that may list the catalog also carry the identity (`idn`), so the proxy can filter
 * the upstream's list down to the repositories this identity may pull; with request-time rules
 * (`opts.embedIdentity`) every token does, for the rules read its claims. Other tokens stay small.
 * `refused`: what the policy withheld of the requested scopes and why, so that a request needing it
 * is answered 403 with the reason rather than a challenge that would only fetch the same token again.
 */
export async function issueRegistryToken(
  keys: KeyRing,
  identity: Identity,
  access: AccessEntry[],
  opts: IssueOptions,
  refused: Refusal[] = [],
): Promise<IssuedToken> {
  const nowMs = (opts.now ?? Date.now)();
  const iat = Math.floor(nowMs / 1000);
  const key = keys.current();
  const explained = boundedRefusals(refused);
  const token = signJwt(
    { kid: key.kid, typ: 'JWT', ...(key.x5c ? { x5c: key.x5c } : {}) },
    {
      access,
      ...(explained.length ? { refused: explained } : {}),
      ...(opts.embedIdentity || grantsCatalog(access) ? { idn: identityClaim(identity) } : {}),
      ...standardClaims(opts.issuer, registrySubject(identity), opts.service, iat, iat + opts.ttl),
    },
    key,
  );
  return { token, expiresIn: opts.ttl, issuedAt: new Date(iat * 1000).toISOString() };
}

/** Bytes of `refused` a token carries at most: tokens travel in every request's headers. */
const MAX_REFUSED_BYTES = 4096;

/**
 * The refusals that fit MAX_REFUSED_BYTES, in order. A request needing one left out is answered
 * with the plain challenge, as before refusals were explained. Pure.
 */
export function boundedRefusals(refused: Refusal[], maxBytes = MAX_REFUSED_BYTES): Refusal[] {
  const out: Refusal[] = [];
  let bytes = 2;
  for (const r of refused) {
    bytes += Buffer.byteLength(JSON.stringify(r)) + 1;
    if (bytes > maxBytes) break;
    out.push(r);
  }
  return out;
}

/** Refresh tokens carry the verified identity so a refresh grant can re-run the policy. */
export const REFRESH_TYP = 'rap-refresh+jwt';
export function refreshAudience(service: string): string {
  return `${service}#refresh`;
}

export interface RefreshIdentity {
  issuerName: string;
  issuer: string;
  subject: string;
  preset?: string;
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  claims: Record<string, unknown>;
}

/** The identity as carried inside our own tokens (`idn`). */
function identityClaim(identity: Identity): RefreshIdentity {
  return {
    issuerName: identity.issuerName,
    issuer: identity.issuer,
    subject: identity.subject,
    preset: identity.preset,
    namespace: identity.namespace,
    serviceAccount: identity.serviceAccount,
    podName: identity.podName,
    claims: identity.claims,
  };
}

/**
 * When a refresh token issued at `iat` for an identity expiring at `identityExp` expires: never after
 * the identity token, and never more than refreshTTL after issue — a 10-year identity token must not
 * become a 10-year credential on someone's disk. Undefined: no refresh token. Pure.
 */
export function refreshExpiry(
  iat: number,
  identityExp: number | undefined,
  refreshTTL = DEFAULT_REFRESH_TTL,
): number | undefined {
  if (identityExp === undefined || refreshTTL <= 0) return undefined;
  const exp = Math.min(identityExp, iat + refreshTTL);
  return exp > iat ? exp : undefined;
}

/**
 * A refresh token for `docker login` (stored as `identitytoken`). It lives until refreshExpiry;
 * without an identity `exp` (or with refreshTTL 0) there is none (returns undefined).
 */
export async function issueRefreshToken(
  keys: KeyRing,
  identity: Identity,
  opts: IssueOptions,
): Promise<string | undefined> {
  const iat = Math.floor((opts.now ?? Date.now)() / 1000);
  const exp = refreshExpiry(iat, identity.expiresAt, opts.refreshTTL);
  if (exp === undefined) return undefined;
  const key = keys.current();
  return signJwt(
    { kid: key.kid, typ: REFRESH_TYP },
    {
      idn: identityClaim(identity),
      ...standardClaims(opts.issuer, registrySubject(identity), refreshAudience(opts.service), iat, exp),
    },
    key,
  );
}

/** The registered claims every token of ours carries, in the order jose's SignJWT wrote them. */
function standardClaims(iss: string, sub: string, aud: string, iat: number, exp: number): Record<string, unknown> {
  return { iss, sub, aud, iat, nbf: iat, exp, jti: randomUUID() };
}
