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
  bytes(direction: 'upload' | 'download', n: number): void;
}

const recorders = new WeakMap<IncomingMessage, RequestAudit>();

/** The recorder auditRequest made for this request, if it is audited (read by the forward stage). */
export function requestAudit(req: IncomingMessage): RequestAudit | undefined {
  return recorders.get(req);
}

/** The recorder of an audited request, or undefined when the route is not one audited (ping, tags, catalog…). */
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
  recorders.set(req, recorder);
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
    // The upstream response's own 'close' (which reports its byte count) lands in the same turn or
    // the next: the event waits one macrotask so a body's bytes are in it.
    setImmediate(() => auditor.emit(registryEvent(facts, auditor.claims, new Date().toISOString())));
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
    bytes: (direction, n) => void (facts.bytes[direction] += n),
  };
}
