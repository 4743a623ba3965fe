import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { anonymousIdentity, IdentityError, type Identity, type IdentityVerifier } from '../identity/types.js';
import type { Logger } from '../log.js';
import { API_VERSION, API_VERSION_HEADER } from '../oci/errors.js';
import { formatScope, parseScopes, ScopeError, type Scope } from '../oci/scope.js';
import { grantResult, refusalOf, type Refusal } from '../policy/explain.js';
import type { PolicyEngine } from '../policy/types.js';
import type { Metrics } from '../server/metrics.js';
import type { RateLimiter } from '../server/rate-limit.js';
import { clientIPOf } from '../server/client-ip.js';
import { issueRefreshToken, issueRegistryToken } from './issue.js';
import type { KeyRing } from './keys.js';
import type { AccessEntry } from './types.js';
import { verifyRefreshToken } from './verify.js';

export const MAX_FORM_BYTES = 64 * 1024;

export interface TokenEndpointDeps {
  config: Config;
  logger: Logger;
  identity: IdentityVerifier;
  policy: PolicyEngine;
  keys: KeyRing;
  metrics?: Metrics;
  /** Per-client and global request budget; absent = unlimited. */
  limiter?: RateLimiter;
}

/** A token request, normalized from GET (Basic + query) or POST (OAuth2 form). */
export interface TokenRequest {
  method: 'GET' | 'POST';
  grantType: 'password' | 'refresh_token';
  username?: string;
  password?: string;
  refreshToken?: string;
  service?: string;
  scopes: string[];
  clientId?: string;
  offline: boolean;
}

class TokenHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly oauthError: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Parses `Authorization: Basic …`; the password is the identity token. */
export function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/**
 * Reads the form within `timeoutMs`: a body that never arrives would otherwise hold its connection
 * (and a file descriptor) forever, and a few hundred such requests took the proxy down. Refusals
 * close the connection: the rest of the body is never read, so nothing after it can be parsed.
 */
async function readForm(req: IncomingMessage, timeoutMs: number): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new TokenHttpError(400, 'UNSUPPORTED', 'invalid_request', 'POST /token takes an application/x-www-form-urlencoded body');
  }
  const tooLarge = () => new TokenHttpError(413, 'SIZE_INVALID', 'invalid_request', `form body larger than ${MAX_FORM_BYTES} bytes`, { connection: 'close' });
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_FORM_BYTES) throw tooLarge();
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) done(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = (err: Error) => done(err);
    const timer = setTimeout(() => done(new TokenHttpError(408, 'UNSUPPORTED', 'invalid_request', `the request body did not arrive within ${timeoutMs} ms`, { connection: 'close' })), timeoutMs);
    req.on('data', onData).once('end', onEnd).once('error', onError);
  });
  return new URLSearchParams(body.toString('utf8'));
}

export async function parseTokenRequest(req: IncomingMessage, url: URL, bodyTimeoutMs = 10_000): Promise<TokenRequest> {
  if (req.method === 'GET') {
    const q = url.searchParams;
    const basic = parseBasic(req.headers.authorization);
    return {
      method: 'GET',
      grantType: 'password',
      username: basic?.username,
      password: basic?.password,
      service: q.get('service') ?? undefined,
      scopes: q.getAll('scope'),
      clientId: q.get('client_id') ?? undefined,
      offline: q.get('offline_token') === 'true',
    };
  }
  const form = await readForm(req, bodyTimeoutMs);
  const grant = form.get('grant_type');
  if (grant !== 'password' && grant !== 'refresh_token') {
    throw new TokenHttpError(400, 'UNSUPPORTED', 'unsupported_grant_type', `grant_type must be "password" or "refresh_token", not ${JSON.stringify(grant ?? '')}`);
  }
  return {
    method: 'POST',
    grantType: grant,
    username: form.get('username') ?? undefined,
    password: form.get('password') ?? undefined,
    refreshToken: form.get('refresh_token') ?? undefined,
    service: form.get('service') ?? undefined,
    scopes: form.getAll('scope'),
    clientId: form.get('client_id') ?? undefined,
    offline: form.get('access_type') === 'offline',
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    pragma: 'no-cache',
    [API_VERSION_HEADER]: API_VERSION,
    ...headers,
  });
  res.end(text);
}

function errorBody(code: string, oauthError: string, message: string) {
  // Both shapes: registry clients read `errors`, OAuth2 clients read `error`/`error_description`.
  return { errors: [{ code, message }], error: oauthError, error_description: message };
}

/**
 * A refresh grant does not see the identity token again, so what can be re-checked is: the issuer is
 * still configured under that name for the same `iss`, and is not (now) a TokenReview issuer, whose
 * revocations a refresh token would outlive. (Signature, exp and age against today's refreshTTL are
 * checked by verifyRefreshToken; the policy is evaluated afresh for every grant.) Pure.
 */
export function refreshIdentityProblem(who: Identity, issuers: Config['issuers']): string | undefined {
  const cfg = issuers.find((i) => i.name === who.issuerName);
  if (!cfg || cfg.issuer !== who.issuer) return 'the refresh token names an issuer that is no longer configured';
  if (cfg.tokenReview) return `issuer "${cfg.name}" is checked with TokenReview, which refresh tokens would bypass`;
  return undefined;
}

/** `GET|POST /token`: the Docker token endpoint (realm). */
export function createTokenHandler(deps: TokenEndpointDeps) {
  const { config, logger, identity: verifier, policy, keys, metrics, limiter } = deps;
  const issueOpts = { issuer: config.publicURL, service: config.service, ttl: config.tokens.ttl, refreshTTL: config.tokens.refreshTTL };
  const reviewed = new Set(config.issuers.filter((i) => i.tokenReview).map((i) => i.name));

  return async function handleToken(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const clientIP = clientIPOf(req);
    let request: TokenRequest | undefined;
    let who: Identity | undefined;
    let scopes: Scope[] = [];
    const admission = limiter?.admit(clientIP);
    if (admission && !admission.ok) {
      // Not an audit event (a flood would drown the log): counted in metrics, logged at debug.
      metrics?.rateLimited.inc({ scope: admission.scope });
      logger.debug({ clientIP, scope: admission.scope }, 'token request rate-limited');
      const message =
        admission.scope === 'client'
          ? `too many token requests from ${clientIP}: retry in ${admission.retryAfterSeconds}s (clients should reuse a token until expires_in)`
          : `the token service is at capacity: retry in ${admission.retryAfterSeconds}s`;
      send(res, 429, errorBody('TOOMANYREQUESTS', 'temporarily_unavailable', message), { 'retry-after': String(admission.retryAfterSeconds) });
      return;
    }
    try {
      if (req.method !== 'GET' && req.method !== 'POST') {
        throw new TokenHttpError(405, 'UNSUPPORTED', 'invalid_request', 'use GET (HTTP Basic) or POST (OAuth2 form)', { allow: 'GET, POST' });
      }
      request = await parseTokenRequest(req, url, config.limits.tokenBodyTimeout);
      if (request.service !== undefined && request.service !== config.service) {
        throw new TokenHttpError(400, 'UNSUPPORTED', 'invalid_request', `unknown service ${JSON.stringify(request.service.slice(0, 200))}: this token server issues tokens for "${config.service}"`);
      }
      try {
        scopes = parseScopes(request.scopes);
      } catch (err) {
        if (err instanceof ScopeError) throw new TokenHttpError(400, 'UNSUPPORTED', 'invalid_scope', `invalid scope: ${err.message}`);
        throw err;
      }
      if (scopes.length > 64) throw new TokenHttpError(400, 'UNSUPPORTED', 'invalid_scope', 'too many scopes in one request (max 64)');

      if (request.grantType === 'refresh_token') {
        if (!request.refreshToken) throw new TokenHttpError(400, 'UNSUPPORTED', 'invalid_request', 'grant_type=refresh_token needs refresh_token');
        try {
          who = await verifyRefreshToken(keys, request.refreshToken, issueOpts);
        } catch (err) {
          throw new TokenHttpError(401, 'UNAUTHORIZED', 'invalid_grant', `${(err as Error).message}: log in again with a fresh identity token`);
        }
        const stale = refreshIdentityProblem(who, config.issuers);
        if (stale) throw new TokenHttpError(401, 'UNAUTHORIZED', 'invalid_grant', `${stale}: log in again with a fresh identity token`);
      } else if (!request.password) {
        if (!config.anonymous) {
          throw new TokenHttpError(401, 'UNAUTHORIZED', 'invalid_client', 'authentication required: send your identity token (JWT) as the password, with any username', {
            'www-authenticate': `Basic realm="${config.publicURL}/token"`,
          });
        }
        who = anonymousIdentity();
      } else {
        try {
          who = await verifier.verify(request.password, { issuerName: request.username });
        } catch (err) {
          if (err instanceof IdentityError) {
            const status = err.reason === 'issuer_unavailable' ? 503 : 401;
            throw new TokenHttpError(status, status === 503 ? 'UNAVAILABLE' : 'UNAUTHORIZED', 'invalid_grant', `identity token refused: ${err.message}`, { 'x-rap-reason': err.reason });
          }
          throw err;
        }
      }

      const ctx = { service: config.service, clientIP };
      const access: AccessEntry[] = [];
      const refused: Refusal[] = [];
      const matched = new Set<string>();
      const decisions = scopes.map((scope) => policy.decide(who!, scope, ctx));
      for (const decision of decisions) {
        const { scope } = decision;
        for (const m of decision.matched) matched.add(m.name);
        if (decision.granted.length > 0) access.push({ type: scope.type, name: scope.name, actions: decision.granted });
        // Rule names ride in the token only when the operator lets clients see them.
        const r = refusalOf(decision, { ruleNames: config.explainDenials });
        if (r) refused.push(r);
      }
      // Still a 200 when nothing is granted (the spec's partial access): a /token error prints
      // worse in every client than the 403 the proxy gives the request that needs it (README: Denials).
      const result = grantResult(decisions);
      const issued = await issueRegistryToken(keys, who, access, issueOpts, refused);
      const body: Record<string, unknown> = {
        token: issued.token,
        access_token: issued.token,
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt,
      };
      if (request.offline && request.grantType === 'password' && !reviewed.has(who.issuerName)) {
        const refresh = await issueRefreshToken(keys, who, issueOpts);
        if (refresh) body.refresh_token = refresh;
      }
      logger.info(
        {
          audit: 'token',
          result,
          grant: request.grantType,
          issuer: who.issuerName,
          subject: who.subject,
          clientId: request.clientId,
          clientIP,
          requested: scopes.map(formatScope),
          granted: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`),
          refused: refused.map((r) => `${r.type}:${r.name}:${r.actions.map((a) => a.action).join(',')}`),
          rules: [...matched],
          refresh: body.refresh_token !== undefined,
        },
        'token decision',
      );
      metrics?.tokenDecisions.inc({ issuer: who.issuerName, result });
      send(res, 200, body);
    } catch (err) {
      if (err instanceof TokenHttpError) {
        logger.info(
          {
            audit: 'token',
            result: 'refused',
            status: err.status,
            reason: err.headers['x-rap-reason'] ?? err.oauthError,
            message: err.message,
            issuer: who?.issuerName,
            clientId: request?.clientId,
            clientIP,
            requested: scopes.map(formatScope),
          },
          'token decision',
        );
        metrics?.tokenDecisions.inc({ issuer: who?.issuerName ?? 'unknown', result: 'refused' });
        const { 'x-rap-reason': _r, ...headers } = err.headers;
        // Docker and containerd print only the status line of a 5xx token answer: name the failed side there.
        if (err.status === 503) res.statusMessage = 'Service Unavailable (identity issuer unavailable)';
        send(res, err.status, errorBody(err.code, err.oauthError, err.message), headers);
        return;
      }
      logger.error({ err: (err as Error).message }, 'token endpoint failed');
      send(res, 500, errorBody('UNKNOWN', 'server_error', 'internal error while issuing the token'));
    }
  };
}
