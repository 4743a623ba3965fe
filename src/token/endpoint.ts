import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { canonicalRepository, routedUpstreams } from '../config/upstreams.js';
import type { Identity, IdentityVerifier } from '../identity/types.js';
import type { Logger } from '../log.js';
import { grant as grantOf, type Grant } from '../policy/grant.js';
import type { PolicyEngine } from '../policy/types.js';
import type { Metrics } from '../http/metrics.js';
import type { RateLimiter } from '../http/rate-limit.js';
import { clientIPOf } from '../http/client-ip.js';
import { authenticate, isIdentityRefusal, type AuthenticateDeps } from './authenticate.js';
import { issueRefreshToken, issueRegistryToken, type IssueOptions } from './issue.js';
import type { KeyRing } from './keys.js';
import { isParseRefusal, readTokenRequest } from './request.js';
import { auditLine, decisionLabels, internalError, rateLimitedError, sendTokenError, sendTokenOutcome, type TokenBody, type TokenOutcome } from './respond.js';

/**
 * `GET|POST /token`, the Docker token endpoint (realm): parse (request.ts) → decide (identity in
 * authenticate.ts, then the policy's grant) → issue → respond (respond.ts), writing once.
 */

interface TokenEndpointDeps {
  config: Config;
  logger: Logger;
  identity: IdentityVerifier;
  policy: PolicyEngine;
  keys: KeyRing;
  metrics?: Metrics;
  /** Per-client and global request budget; absent = unlimited. */
  limiter?: RateLimiter;
}

/**
 * The registry token for a grant and, for an offline password login, a refresh token. Still a 200
 * when nothing is granted (the spec's partial access): a /token error prints worse in every client
 * than the 403 the proxy gives the request that needs it (README: Denials).
 */
async function issueTokens(keys: KeyRing, who: Identity, grant: Grant, opts: IssueOptions, refresh: boolean): Promise<TokenBody> {
  const issued = await issueRegistryToken(keys, who, grant.access, opts, grant.refused);
  const body: TokenBody = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt };
  if (refresh) {
    const refresh = await issueRefreshToken(keys, who, opts);
    if (refresh) body.refresh_token = refresh;
  }
  return body;
}

export function createTokenHandler(deps: TokenEndpointDeps) {
  const { config, logger, identity: verifier, policy, keys, metrics, limiter } = deps;
  const issueOpts: IssueOptions = { issuer: config.publicURL, service: config.service, ttl: config.tokens.ttl, refreshTTL: config.tokens.refreshTTL };
  const authDeps: AuthenticateDeps = { config, verifier, keys, issueOpts };
  // A refresh token would outlive the revocations TokenReview exists to see.
  const reviewed = new Set(config.issuers.filter((i) => i.tokenReview).map((i) => i.name));
  // Scopes are decided and granted under the name /v2/ requests are judged by (hub/nginx → hub/library/nginx).
  const upstreams = routedUpstreams(config);
  const canonical = (repository: string) => canonicalRepository(upstreams, repository);

  /** Parse → authenticate → grant → issue: the decision as a value, with what its audit line needs. */
  async function decide(req: IncomingMessage, url: URL, clientIP: string): Promise<TokenOutcome> {
    const parsed = await readTokenRequest(req, url, { service: config.service, bodyTimeoutMs: config.limits.tokenBodyTimeout, canonical });
    if (isParseRefusal(parsed)) return { kind: 'refused', ...parsed, reason: parsed.error.oauth ?? parsed.error.code };
    const { request, scopes } = parsed;
    const who = await authenticate(request, authDeps);
    if (isIdentityRefusal(who)) return { kind: 'refused', ...who, request, scopes };
    // Rule names ride in the token only when the operator lets clients see them.
    const grant = grantOf(policy, who, scopes, { service: config.service, clientIP }, { ruleNames: config.explainDenials });
    const refresh = request.offline && request.grantType === 'password' && !reviewed.has(who.issuerName);
    const body = await issueTokens(keys, who, grant, issueOpts, refresh);
    return { kind: 'granted', request, scopes, who, grant, body };
  }

  return async function handleToken(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const clientIP = clientIPOf(req);
    const admission = limiter?.admit(clientIP);
    if (admission && !admission.ok) {
      // Not an audit event (a flood would drown the log): counted in metrics, logged at debug.
      metrics?.rateLimited.inc({ scope: admission.scope });
      logger.debug({ clientIP, scope: admission.scope }, 'token request rate-limited');
      sendTokenError(res, rateLimitedError(admission, clientIP));
      return;
    }
    let outcome: TokenOutcome;
    try {
      outcome = await decide(req, url, clientIP);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'token endpoint failed');
      sendTokenError(res, internalError());
      return;
    }
    logger.info(auditLine(outcome, clientIP), 'token decision');
    metrics?.tokenDecisions.inc(decisionLabels(outcome));
    sendTokenOutcome(res, outcome);
  };
}
