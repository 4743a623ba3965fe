import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Auditor } from '../audit/auditor.js';
import { registryAction, registryEvent, type RegistryAction, type RegistryFacts } from '../audit/events.js';
import { clientIPOf } from '../http/client-ip.js';
import { requestState } from '../http/request-state.js';
import type { Route } from '../oci/route.js';
import type { Granted } from './authorize.js';

/**
 * One audit event per manifest or blob request (audit/events.ts), whatever ends it: a challenge,
 * a guard's refusal, the upstream's answer or a cut connection. Facts are gathered as the request
 * goes (who, which upstream, the upstream's digest, bytes) and emitted once, when the response closes.
 */
export interface RequestAudit {
  granted(authorized: Granted): void;
  upstream(name: string): void;
  refusedBy(guard: string, reason?: string): void;
  /** The upstream's response headers (its `Docker-Content-Digest`). */
  upstreamHeaders(headers: IncomingMessage['headers']): void;
  /** Body bytes each way, added to by the exchange as chunks pass (proxy/forward.ts `counted`). */
  readonly bytes: { upload: number; download: number };
}

/**
 * The recorder of an audited request, or undefined when the route is not one audited (ping, tags,
 * catalog…). The caller hands it on to the stages that add facts: it is not kept in a WeakMap keyed
 * by the request, because a WeakMap value that reaches its key (the recorder's closures hold the
 * request and response) survives young-generation GCs: with one, every audited request's objects
 * were promoted, old space grew ~2 MB per scavenge and scavenges took 10 ms instead of 2 (--trace-gc,
 * manifest HEAD ×16, 2026-12-06), the bulk of audit events' cost.
 */
export function auditRequest(
  req: IncomingMessage,
  res: ServerResponse,
  route: Route,
  auditor: Auditor | undefined,
): RequestAudit | undefined {
  if (!auditor?.active || route.name === undefined) return undefined;
  const action = registryAction(route.method, route.kind, route.query);
  if (!action) return undefined;
  const recorder = recorderFor(req, res, { ...route, name: route.name }, action, auditor);
  if (auditor.toLogStream) requestState(req).loggedByAudit = true;
  return recorder;
}

function recorderFor(
  req: IncomingMessage,
  res: ServerResponse,
  route: Route & { name: string },
  action: RegistryAction,
  auditor: Auditor,
): RequestAudit {
  const started = performance.now();
  const facts: RegistryFacts = {
    action,
    method: route.method,
    repository: route.name,
    ...(route.reference !== undefined ? { reference: route.reference } : {}),
    bytes: { upload: 0, download: 0 },
    status: 0,
    ms: 0,
    clientIP: clientIPOf(req),
    requestId: requestState(req).requestId,
    ...(req.headers.host ? { host: req.headers.host } : {}),
    ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
    // a manifest PUT names its media type; a read's comes from the upstream's answer
    ...(action === 'manifest.put' && req.headers['content-type'] ? { mediaType: req.headers['content-type'] } : {}),
  };
  res.once('close', () => {
    facts.status = res.writableFinished ? res.statusCode : 'aborted';
    if (!res.writableFinished && res.headersSent) facts.statusSent = res.statusCode;
    facts.ms = performance.now() - started;
    // The byte counts are live (every chunk that passed is in them), so the event goes now.
    auditor.emit(registryEvent(facts, auditor.claims, new Date().toISOString()));
  });
  return {
    granted(authorized) {
      facts.tokenSubject =
        authorized.subject ??
        (authorized.identity ? `${authorized.identity.issuerName}:${authorized.identity.subject}` : undefined);
      if (authorized.identity?.claims) facts.identityClaims = authorized.identity.claims;
    },
    upstream: (name) => void (facts.upstream = name),
    refusedBy: (guard, reason) => void (facts.refusedBy = reason ? { guard, reason } : { guard }),
    upstreamHeaders(headers) {
      const digest = headers['docker-content-digest'];
      if (typeof digest === 'string') facts.upstreamDigest = digest;
      if (route.method !== 'GET' && route.method !== 'HEAD') return;
      if (headers['content-type']) facts.mediaType = headers['content-type'];
      const length = Number(headers['content-length']);
      if (headers['content-length'] && Number.isSafeInteger(length)) facts.size = length;
    },
    bytes: facts.bytes,
  };
}
