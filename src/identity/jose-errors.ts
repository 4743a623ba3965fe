import { errors as joseErrors } from 'jose';
import type { IssuerConfig } from '../config/types.js';
import { IdentityError } from './types.js';

/** What a failed jose verification means for the user, as an IdentityError of the issuer `cfg`. Pure. */
export function joseFailure(err: unknown, cfg: IssuerConfig): IdentityError {
  if (err instanceof IdentityError) return err;
  const n = cfg.name;
  if (err instanceof joseErrors.JWTExpired) {
    const exp =
      typeof err.payload.exp === 'number' ? new Date(err.payload.exp * 1000).toISOString() : 'an earlier time';
    return new IdentityError('expired', `the identity token expired at ${exp}: get a fresh token`, n);
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) return claimFailure(err, cfg);
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return new IdentityError('unknown_key', `no key of issuer ${cfg.issuer} matches the token's "kid"`, n);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return new IdentityError('bad_signature', "the signature does not verify with the issuer's keys", n);
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return new IdentityError('unsupported_algorithm', 'the token algorithm is not accepted', n);
  if (
    err instanceof joseErrors.JWSInvalid ||
    err instanceof joseErrors.JWTInvalid ||
    err instanceof joseErrors.JOSENotSupported
  ) {
    return new IdentityError('malformed', `the identity token is malformed: ${(err as Error).message}`, n);
  }
  if (err instanceof joseErrors.JWKSInvalid)
    return new IdentityError('issuer_unavailable', `issuer ${cfg.issuer} published an invalid JWKS`, n);
  return new IdentityError(
    'bad_signature',
    `the identity token could not be verified: ${(err as Error)?.message ?? String(err)}`,
    n,
  );
}

function claimFailure(err: InstanceType<typeof joseErrors.JWTClaimValidationFailed>, cfg: IssuerConfig): IdentityError {
  const n = cfg.name;
  switch (err.claim) {
    case 'aud':
      return new IdentityError(
        'wrong_audience',
        `the identity token's audience must include ${cfg.audiences.map((a) => JSON.stringify(a)).join(' or ')}: request the token for that audience`,
        n,
      );
    case 'nbf':
    case 'iat':
      return new IdentityError(
        'not_yet_valid',
        'the identity token is not valid yet (nbf/iat in the future): check the clocks',
        n,
      );
    case 'exp':
      return new IdentityError(
        'missing_claim',
        'the identity token has no "exp" claim: tokens without an expiry are refused',
        n,
      );
    default:
      return new IdentityError(
        'missing_claim',
        `the identity token's "${err.claim}" claim is invalid: ${err.reason}`,
        n,
      );
  }
}
