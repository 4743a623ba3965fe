import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { findDuplicateMember } from './duplicate-members.js';
import { IdentityError } from './types.js';

/**
 * The checks every identity token passes before any key is touched, whatever its source (RFC 8725;
 * PROTOCOLS.md "JWT verification"). Pure: each returns a value or throws the IdentityError that
 * says why, in words the user can act on and never echoing the token.
 */

const MAX_TOKEN_BYTES = 16 * 1024;
/** Asymmetric algorithms only: never `none`, never HMAC (a public key must not become an HMAC secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
/** Headers that would let a token name its own key (RFC 8725 §3.10): refused on identity tokens. */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const NOT_A_JWT = 'the password is not a JWT: give the identity token (a signed JWT) as the registry password';

/** Size and compact-JWS shape, checked before anything is parsed or looked up. */
export function checkShape(token: unknown): asserts token is string {
  if (typeof token !== 'string' || token.length === 0) throw new IdentityError('malformed', 'no identity token given');
  if (token.length > MAX_TOKEN_BYTES)
    throw new IdentityError('too_large', `the identity token is larger than ${MAX_TOKEN_BYTES} bytes`);
  if (!JWT_SHAPE.test(token)) throw new IdentityError('malformed', NOT_A_JWT);
}

interface DecodedToken {
  header: ProtectedHeaderParameters;
  /** Unverified: only `iss` may be used, to pick the source that verifies the rest. */
  payload: JWTPayload;
  iss: string;
}

/** Header and payload as JSON without repeated members, and an `iss` to pick the issuer by. */
export function decodeToken(token: string): DecodedToken {
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch {
    throw new IdentityError('malformed', NOT_A_JWT);
  }
  const [h64, p64] = token.split('.');
  const dup =
    findDuplicateMember(Buffer.from(h64!, 'base64url').toString('utf8')) ??
    findDuplicateMember(Buffer.from(p64!, 'base64url').toString('utf8'));
  if (dup !== undefined)
    throw new IdentityError(
      'malformed',
      `the identity token repeats the member ${JSON.stringify(dup.slice(0, 100))}: refused rather than guessing which one counts`,
    );
  const iss = payload.iss;
  if (typeof iss !== 'string' || iss.length === 0)
    throw new IdentityError('missing_claim', 'the identity token has no "iss" claim');
  return { header, payload, iss };
}

/** Keys come from the issuer's configuration only; the algorithm from the allow-list only. */
export function checkHeader(header: ProtectedHeaderParameters, issuerName: string): void {
  for (const h of FORBIDDEN_HEADERS) {
    if (h in header)
      throw new IdentityError(
        'forbidden_header',
        `identity tokens may not carry a "${h}" header: keys come from the issuer's configuration only`,
        issuerName,
      );
  }
  if (header.crit !== undefined)
    throw new IdentityError(
      'forbidden_header',
      'the identity token has a "crit" header this proxy does not understand',
      issuerName,
    );
  if (typeof header.alg !== 'string' || !ALLOWED_ALGORITHMS.includes(header.alg)) {
    throw new IdentityError(
      'unsupported_algorithm',
      `algorithm ${JSON.stringify(String(header.alg))} is not accepted (use one of ${ALLOWED_ALGORITHMS.join(', ')})`,
      issuerName,
    );
  }
}

/** A Basic username that names a configured issuer pins the token to that issuer. */
export function checkPinnedIssuer(
  pinned: string | undefined,
  configuredNames: ReadonlySet<string>,
  issuerName: string,
): void {
  if (pinned !== undefined && configuredNames.has(pinned) && pinned !== issuerName) {
    throw new IdentityError(
      'issuer_mismatch',
      `the username names issuer "${pinned}" but the token comes from "${issuerName}"`,
      issuerName,
    );
  }
}

/**
 * jose checks `iat` only together with maxTokenAge, so a token stamped as issued in the future
 * (a broken or hostile issuer clock, or a token minted to stay "fresh") passes. Refused beyond the
 * issuer's clockSkew; returns the reason, or undefined.
 */
export function futureIssuedAt(iat: unknown, nowMs: number, clockSkewS: number): string | undefined {
  if (typeof iat !== 'number' || iat <= nowMs / 1000 + clockSkewS) return undefined;
  const when = Number.isFinite(iat) && Math.abs(iat) < 8.64e12 ? new Date(iat * 1000).toISOString() : String(iat);
  return `the identity token claims to be issued in the future (iat ${when}, more than ${clockSkewS}s ahead of this proxy's clock): check the clocks of the issuer and the proxy`;
}

/** Throws when the verified claims were issued in the future (see futureIssuedAt). */
export function checkIssuedAt(claims: JWTPayload, nowMs: number, clockSkewS: number, issuerName: string): void {
  const issuedAhead = futureIssuedAt(claims.iat, nowMs, clockSkewS);
  if (issuedAhead) throw new IdentityError('not_yet_valid', issuedAhead, issuerName);
}

/** Every identity names its workload: a token without `sub` is refused, whatever vouched for it. */
export function checkSubject(claims: JWTPayload, issuerName: string): void {
  if (typeof claims.sub !== 'string' || claims.sub.length === 0)
    throw new IdentityError('missing_claim', 'the identity token has no "sub" claim', issuerName);
}
