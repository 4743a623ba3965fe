import { hash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { canonicalRepository, upstreamNameOf } from '../config/upstreams.js';
import { isAnonymous, type Identity, type IdentityVerifier } from '../identity/types.js';
import type { Logger } from '../log.js';
import { grant as grantOf, type Grant } from '../policy/grant.js';
import type { PolicyEngine } from '../policy/types.js';
import { policyDigest } from '../policy/digest.js';
import type { Metrics } from '../http/metrics.js';
import type { Admission, RateLimiter } from '../http/rate-limit.js';
import { clientIPOf } from '../http/client-ip.js';
import { headroomHeaders, refusalOf } from '../limits/answer.js';
import type { Limiter } from '../limits/types.js';
import { logAuditor, type Auditor } from '../audit/auditor.js';
import type { RequestTrace, Tracing } from '../tracing/types.js';
import { authenticate, isIdentityRefusal, type AuthenticateDeps } from './authenticate.js';
import { issueRefreshToken, issueRegistryToken, type IssueOptions } from './issue.js';
import type { KeyRing } from './signing-keys.js';
import { isParseRefusal, readTokenRequest, type TokenRequest } from './request.js';
import { record, type DecisionLogContext } from './record.js';
import {
  internalError,
  rateLimitedError,
  sendTokenError,
  sendTokenOutcome,
  type TokenBody,
  type TokenOutcome,
  type TokenRefused,
} from './respond.js';

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
  /** Per-address, per-identity and global request budgets; absent = unlimited. */
  limiter?: RateLimiter;
  /** `limits.rules` (limits/): counted once the identity is verified, before issuing. */
  limits?: Limiter;
  /** Where the decision's audit event goes (absent: the log stream, as always). */
  auditor?: Auditor;
  tracing?: Tracing;
}

/**
 * The registry token for a grant and, for an offline password login, a refresh token. Still a 200
 * when nothing is granted (the spec's partial access): a /token error prints worse in every client
 * than the 403 the proxy gives the request that needs it (docs/http.md: Denials).
 */
async function issueTokens(
  keys: KeyRing,
  who: Identity,
  grant: Grant,
  opts: IssueOptions,
  refresh: boolean,
): Promise<TokenBody> {
  const issued = await issueRegistryToken(keys, who, grant.access, opts, grant.refused);
  const body: TokenBody = {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  };
  if (refresh) {
    const refresh = await issueRefreshToken(keys, who, opts);
    if (refresh) body.refresh_token = refresh;
  }
  return body;
}

/** The limiter's key of a verified identity: issuer + subject, hashed so a long subject costs 43 bytes. */
function identityKey(who: Identity): string {
  return hash('sha256', JSON.stringify([who.issuer, who.subject]), 'base64url');
}

/** The 429 outcome of a refused admission, with what its audit line records. Pure. */
function throttled(
  admission: Admission & { ok: false },
  clientIP: string,
  parsed: { request?: TokenRequest; scopes: TokenRefused['scopes'] },
  who?: Identity,
): TokenRefused {
  const { bucket, repeat } = admission;
  const error = rateLimitedError(admission, clientIP, who);
  return {
    kind: 'refused',
    error,
    reason: 'rate_limited',
    request: parsed.request,
    scopes: parsed.scopes,
    ...(who ? { who } : {}),
    limited: { bucket, repeat },
  };
}

/**
 * `limits.rules` at /token (`request.kind == "token"` to their match): the refusal (429, or 503 with
 * the store down and failMode: closed), else the RateLimit headers of the closest limit.
 */
async function limitedAtToken(limits: Limiter | undefined, identity: Identity, service: string, clientIP: string) {
  if (!limits?.applies('token')) return {};
  const request = {
    type: '',
    repository: '',
    actions: [],
    service,
    clientIP,
    upstream: '',
    kind: 'token',
    method: '',
    reference: '',
  };
  const verdict = await limits.check({ identity, request });
  return {
    refused: refusalOf(verdict, Date.now()),
    headers: verdict.ok ? headroomHeaders(verdict.headroom) : undefined,
  };
}

/**
 * How tokens are issued: request-time rules read the identity on each request, limits at /v2/ are
 * keyed by it, and audit events list claims of it, so then every registry token carries it.
 */
function issueOptions(
  config: Config,
  policy: PolicyEngine,
  limits: Limiter | undefined,
  auditClaims: number,
): IssueOptions {
  const { publicURL: issuer, service, tokens } = config;
  // Audit events on /v2/ carry the claims the operator listed: the token must hold them too.
  const embedIdentity = policy.requestRules.length > 0 || limits?.applies('registry') === true || auditClaims > 0;
  return { issuer, service, ttl: tokens.ttl, refreshTTL: tokens.refreshTTL, embedIdentity };
}

/** The identity an already verified (cached) identity token proves: cheap, so admitted by identity. */
function knownIdentity(verifier: IdentityVerifier, request: TokenRequest): Identity | undefined {
  if (request.grantType !== 'password' || !request.password) return undefined;
  return verifier.cached?.(request.password, { issuerName: request.username });
}

/**
 * Parse → admit → authenticate → grant → issue: the decision as a value, with what its audit line
 * needs. Admission comes after the parse (a bounded form, read within tokenBodyTimeout) because a
 * cached identity token is admitted by its identity, which the parse reveals; anything else is
 * admitted by address before verification and, once it proves an identity, settled onto that
 * identity (http/rate-limit.ts says why). Unauthenticated, anonymous and failed attempts stay on
 * their address.
 */
function createTokenDecider(
  deps: TokenEndpointDeps,
): (req: IncomingMessage, url: URL, clientIP: string, trace?: RequestTrace) => Promise<TokenOutcome> {
  const { config, identity: verifier, policy, keys, limiter, limits } = deps;
  const issueOpts = issueOptions(config, policy, limits, deps.auditor?.claims.length ?? 0);
  const authDeps: AuthenticateDeps = { config, verifier, keys, issueOpts };
  // A refresh token would outlive the revocations TokenReview exists to see.
  const reviewed = new Set(config.issuers.filter((i) => i.tokenReview).map((i) => i.name));
  // Scopes are decided and granted under the name /v2/ requests are judged by (hub/nginx → hub/library/nginx).
  const canonical = (repository: string) => canonicalRepository(config.upstreams, repository);

  return async function decide(req, url, clientIP, trace) {
    const parsed = await readTokenRequest(req, url, {
      service: config.service,
      bodyTimeoutMs: config.limits.tokenBodyTimeout,
      canonical,
    });
    const known = isParseRefusal(parsed) ? undefined : knownIdentity(verifier, parsed.request);
    const admitted = limiter && (known ? limiter.admitIdentity(identityKey(known)) : limiter.admitAddress(clientIP));
    if (admitted && !admitted.ok) return throttled(admitted, clientIP, parsed, known);
    if (isParseRefusal(parsed)) return { kind: 'refused', ...parsed, reason: parsed.error.oauth ?? parsed.error.code };
    const { request, scopes } = parsed;
    const verifying = trace?.child('verify');
    const who = await authenticate(request, authDeps);
    verifying?.end(isIdentityRefusal(who) ? who.reason : 'verified');
    if (isIdentityRefusal(who)) return { kind: 'refused', ...who, request, scopes };
    trace?.set('rap.issuer', who.issuerName);
    if (limiter && !known && !isAnonymous(who)) {
      const settled = limiter.settleVerified(clientIP, identityKey(who));
      if (!settled.ok) return throttled(settled, clientIP, parsed, who);
    }
    const { refused, headers } = await limitedAtToken(limits, who, config.service, clientIP);
    if (refused)
      return {
        kind: 'refused',
        error: refused,
        reason: refused.status === 429 ? 'rate_limited' : 'limits_unavailable',
        request,
        scopes,
        who,
      };
    // Rule names ride in the token only when the operator lets clients see them.
    const deciding = trace?.child('policy');
    const grant = grantOf(
      policy,
      who,
      scopes,
      { service: config.service, clientIP },
      { ruleNames: config.explainDenials },
    );
    deciding?.end(grant.refused.length ? 'partly refused' : 'granted');
    const refresh = request.offline && request.grantType === 'password' && !reviewed.has(who.issuerName);
    const body = await issueTokens(keys, who, grant, issueOpts, refresh);
    return { kind: 'granted', request, scopes, who, grant, body, headers };
  };
}

export function createTokenHandler(deps: TokenEndpointDeps) {
  const { logger, metrics } = deps;
  const auditor = deps.auditor ?? logAuditor(logger);
  const decide = createTokenDecider({ ...deps, auditor });
  // Computed once: the policies are loaded once per process.
  const decisions: DecisionLogContext | undefined = auditor.logDecision && {
    service: deps.config.service,
    policy: policyDigest(deps.policy.rules),
    upstreamOf: upstreamNameOf(deps.config.upstreams),
  };

  return async function handleToken(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const trace = deps.tracing?.request(req, res, '/token');
    const clientIP = clientIPOf(req);
    let outcome: TokenOutcome;
    try {
      outcome = await decide(req, url, clientIP, trace);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'token endpoint failed');
      sendTokenError(res, internalError());
      return;
    }
    record(outcome, req, clientIP, { logger, metrics, auditor, decisions });
    sendTokenOutcome(res, outcome);
  };
}
