import type { ServerResponse } from 'node:http';
import type { Identity } from '../identity/types.js';
import { sendJson } from '../http/response.js';
import { API_VERSION, API_VERSION_HEADER, oauthError, sendOciError, type OciError } from '../oci/errors.js';
import { formatScope, type Scope } from '../oci/scope.js';
import { denialMessage } from '../policy/explain.js';
import type { Grant } from '../policy/grant.js';
import type { Admission, LimitBucket } from '../http/rate-limit.js';
import type { TokenRequest } from './request.js';
import { AUDIT_SCHEMA, pickClaims, type TokenEvent } from '../audit/events.js';
import { DECISION_SCHEMA, type DecisionRecord } from '../policy/decision-log.js';

/** Respond: the decision value → the audit event and the one answer. */

/** The token endpoint's answer body (Docker token-auth spec, plus OAuth2's `access_token`). */
export interface TokenBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

export interface TokenGranted {
  kind: 'granted';
  request: TokenRequest;
  scopes: Scope[];
  who: Identity;
  grant: Grant;
  body: TokenBody;
  /** `ratelimit-limit`/`ratelimit-remaining` of the closest limits.rules limit, when one counted. */
  headers?: Record<string, string>;
}

export interface TokenRefused {
  kind: 'refused';
  error: OciError;
  /** Why, for the audit line: the identity failure's reason, else the OAuth2 error. */
  reason: string;
  request?: TokenRequest;
  scopes: Scope[];
  who?: Identity;
  /** Set for a 429: the bucket that refused, and whether it had already refused (audited) since it last admitted. */
  limited?: { bucket: LimitBucket; repeat: boolean };
}

/** What the endpoint decided for one request, with everything its audit line records. */
export type TokenOutcome = TokenGranted | TokenRefused;

/** Token answers are credentials (or about them): never cached (RFC 6749 §5.1). */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** Where and when a decision was made, and which identity claims its event carries. */
interface AuditContext {
  clientIP: string;
  time: string;
  requestId?: string;
  claims: readonly string[];
}

/** The typed audit event of one decision (the audit line's fields, unchanged); never the token. Pure. */
export function tokenEvent(outcome: TokenOutcome, at: AuditContext): TokenEvent {
  const { clientIP } = at;
  const requested = outcome.scopes.map(formatScope);
  const head = {
    schema: AUDIT_SCHEMA,
    audit: 'token',
    time: at.time,
    ...(at.requestId ? { requestId: at.requestId } : {}),
  } as const;
  const claims = pickClaims(outcome.who?.claims, at.claims);
  if (outcome.kind === 'refused') {
    const { error, reason, who, request, limited } = outcome;
    return {
      ...head,
      result: 'refused',
      status: error.status,
      reason,
      bucket: limited?.bucket,
      message: error.message,
      issuer: who?.issuerName,
      subject: who?.subject,
      ...(claims ? { claims } : {}),
      clientId: request?.clientId,
      clientIP,
      requested,
    };
  }
  const { grant, who, request } = outcome;
  return {
    ...head,
    result: grant.result,
    grant: request.grantType,
    issuer: who.issuerName,
    subject: who.subject,
    ...(claims ? { claims } : {}),
    clientId: request.clientId,
    clientIP,
    requested,
    granted: grant.access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`),
    refused: grant.refused.map((r) => `${r.type}:${r.name}:${r.actions.map((a) => a.action).join(',')}`),
    // partial, denied: why, in the words the client prints when it uses a refused action (a 403)
    message: grant.refused.length ? denialMessage(who, grant.refused, true) : undefined,
    rules: grant.matched,
    ...(grant.wouldDeny?.length ? { wouldDeny: grant.wouldDeny } : {}),
    refresh: outcome.body.refresh_token !== undefined,
  };
}

/** What a decision-log record needs beyond the outcome: when, where, which claims, which policies. */
interface DecisionContext extends AuditContext {
  service: string;
  /** The policy digest (policy/digest.ts). */
  policy: string;
  /** request.upstream of a repository, as the policy saw it. */
  upstreamOf(repository: string): string;
}

/**
 * The decision-log record of a decision the policy made: its inputs (identity, the listed claims
 * with `iss` and `sub`, scopes, request) and, per scope, what was granted and which rules matched.
 * Never the token. Pure.
 */
export function decisionRecord(outcome: TokenGranted, at: DecisionContext): DecisionRecord {
  const { who, grant } = outcome;
  return {
    schema: DECISION_SCHEMA,
    time: at.time,
    ...(at.requestId ? { requestId: at.requestId } : {}),
    policy: at.policy,
    identity: {
      issuerName: who.issuerName,
      issuer: who.issuer,
      subject: who.subject,
      ...(who.preset ? { preset: who.preset } : {}),
      ...(who.namespace ? { namespace: who.namespace } : {}),
      ...(who.serviceAccount ? { serviceAccount: who.serviceAccount } : {}),
      ...(who.podName ? { podName: who.podName } : {}),
    },
    claims: pickClaims(who.claims, ['iss', 'sub', ...at.claims]) ?? {},
    request: { service: at.service, clientIP: at.clientIP },
    decisions: grant.decisions.map((d) => {
      const upstream = d.scope.type === 'repository' ? at.upstreamOf(d.scope.name) : '';
      return {
        scope: { type: d.scope.type, name: d.scope.name, actions: d.scope.actions },
        ...(upstream ? { upstream } : {}),
        granted: d.granted,
        rules: d.matched.map((m) => m.name),
      };
    }),
  };
}

/** The metric labels of one decision. Pure. */
export function decisionLabels(outcome: TokenOutcome): { issuer: string; result: string } {
  if (outcome.kind === 'refused') return { issuer: outcome.who?.issuerName ?? 'unknown', result: 'refused' };
  return { issuer: outcome.who.issuerName, result: outcome.grant.result };
}

/**
 * 429 for a request over its budget, saying which and when to retry: Docker, containerd and podman
 * print the message. The identity is named by its issuer only (the client knows its subject). Pure.
 */
export function rateLimitedError(admission: Admission & { ok: false }, clientIP: string, who?: Identity): OciError {
  const retry = `retry in ${admission.retryAfterSeconds}s`;
  const message =
    admission.bucket === 'address'
      ? `too many unauthenticated or failed token requests from ${clientIP}: ${retry} (send a valid identity token)`
      : admission.bucket === 'identity'
        ? `too many token requests from this identity (issuer ${JSON.stringify(who?.issuerName ?? '')}): ${retry} (clients should reuse a token until expires_in)`
        : `the token service is at capacity: ${retry}`;
  return oauthError(429, 'TOOMANYREQUESTS', 'temporarily_unavailable', message, {
    headers: { 'retry-after': String(admission.retryAfterSeconds) },
  });
}

/** 500: what a client is told when issuing failed on our side (the cause is logged). */
export function internalError(): OciError {
  return oauthError(500, 'UNKNOWN', 'server_error', 'internal error while issuing the token');
}

/** Writes a token endpoint error (both the OCI and the OAuth2 shape). */
export function sendTokenError(res: ServerResponse, error: OciError): void {
  sendOciError(res, error, NO_STORE);
}

/** Writes the answer to one decision: the token, or the refusal. */
export function sendTokenOutcome(res: ServerResponse, outcome: TokenOutcome): void {
  if (outcome.kind === 'refused') sendTokenError(res, outcome.error);
  else sendJson(res, 200, outcome.body, { ...outcome.headers, ...NO_STORE, [API_VERSION_HEADER]: API_VERSION });
}
