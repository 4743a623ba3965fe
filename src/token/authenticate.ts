import type { Config } from '../config/types.js';
import { anonymousIdentity, IdentityError, type Identity, type IdentityVerifier } from '../identity/types.js';
import { oauthError, type OciError } from '../oci/errors.js';
import type { IssueOptions } from './issue.js';
import type { KeyRing } from './signing-keys.js';
import type { TokenRequest } from './request.js';
import { verifyRefreshToken } from './verify.js';

/** Decide, first half: who is asking. Returns the identity, or the refusal; never writes. */

/** Why no identity was established: the client's error, the audit reason, and who, when known. */
interface IdentityRefusal {
  error: OciError;
  /** The audit line's `reason`: the identity failure (IdentityError.reason), else the OAuth2 error. */
  reason: string;
  /** Set when the refresh token was valid but its issuer no longer qualifies. */
  who?: Identity;
}

export function isIdentityRefusal(x: Identity | IdentityRefusal): x is IdentityRefusal {
  return 'error' in x;
}

export interface AuthenticateDeps {
  config: Pick<Config, 'anonymous' | 'publicURL' | 'issuers'>;
  verifier: IdentityVerifier;
  keys: KeyRing;
  issueOpts: IssueOptions;
}

const refused = (error: OciError, who?: Identity): IdentityRefusal => ({
  error,
  reason: error.oauth ?? error.code,
  ...(who ? { who } : {}),
});
const loginAgain = (message: string) =>
  oauthError(401, 'UNAUTHORIZED', 'invalid_grant', `${message}: log in again with a fresh identity token`);

/**
 * A refresh grant does not see the identity token again, so what can be re-checked is: the issuer is
 * still configured under that name for the same `iss`, and is not (now) a TokenReview issuer, whose
 * revocations a refresh token would outlive. (Signature, exp and age against today's refreshTTL are
 * checked by verifyRefreshToken; the policy is evaluated afresh for every grant.) Pure.
 */
function refreshIdentityProblem(who: Identity, issuers: Config['issuers']): string | undefined {
  const cfg = issuers.find((i) => i.name === who.issuerName);
  if (!cfg || cfg.issuer !== who.issuer) return 'the refresh token names an issuer that is no longer configured';
  if (cfg.tokenReview) return `issuer "${cfg.name}" is checked with TokenReview, which refresh tokens would bypass`;
  return undefined;
}

/** The identity behind a refresh token, re-checked against today's issuers. */
async function refreshGrant(
  refreshToken: string | undefined,
  deps: AuthenticateDeps,
): Promise<Identity | IdentityRefusal> {
  if (!refreshToken)
    return refused(oauthError(400, 'UNSUPPORTED', 'invalid_request', 'grant_type=refresh_token needs refresh_token'));
  let who: Identity;
  try {
    who = await verifyRefreshToken(deps.keys, refreshToken, deps.issueOpts);
  } catch (err) {
    return refused(loginAgain((err as Error).message));
  }
  const stale = refreshIdentityProblem(who, deps.config.issuers);
  return stale ? refused(loginAgain(stale), who) : who;
}

/** The identity an identity token (the password) proves. An issuer that cannot be reached is a 503, named in the status line. */
async function passwordGrant(
  password: string,
  username: string | undefined,
  verifier: IdentityVerifier,
): Promise<Identity | IdentityRefusal> {
  try {
    return await verifier.verify(password, { issuerName: username });
  } catch (err) {
    if (!(err instanceof IdentityError)) throw err;
    const message = `identity token refused: ${err.message}`;
    // Docker and containerd print only the status line of a 5xx token answer: name the failed side there.
    const error =
      err.reason === 'issuer_unavailable'
        ? oauthError(503, 'UNAVAILABLE', 'invalid_grant', message, {
            statusMessage: 'Service Unavailable (identity issuer unavailable)',
          })
        : oauthError(401, 'UNAUTHORIZED', 'invalid_grant', message);
    return { error, reason: err.reason };
  }
}

/** Who the request speaks for: a refresh token's identity, an identity token's, or anonymous when allowed. */
export async function authenticate(request: TokenRequest, deps: AuthenticateDeps): Promise<Identity | IdentityRefusal> {
  if (request.grantType === 'refresh_token') return refreshGrant(request.refreshToken, deps);
  if (request.password) return passwordGrant(request.password, request.username, deps.verifier);
  if (deps.config.anonymous) return anonymousIdentity();
  return refused(
    oauthError(
      401,
      'UNAUTHORIZED',
      'invalid_client',
      'authentication required: send your identity token (JWT) as the password, with any username',
      {
        headers: { 'www-authenticate': `Basic realm="${deps.config.publicURL}/token"` },
      },
    ),
  );
}
