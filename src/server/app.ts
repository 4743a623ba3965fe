import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { requestContext, type Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';
import { clientIPOf, clientIPResolver } from '../http/client-ip.js';
import { requestState } from '../http/request-state.js';
import type { Metrics } from '../http/metrics.js';
import { announcesBody } from '../http/body.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface AppRoutes {
  token: RouteHandler;
  jwks: RouteHandler;
  healthz: RouteHandler;
  readyz: RouteHandler;
  metrics: RouteHandler;
  /** Reads the request's own URL (classify): no parsed URL is built for it. */
  v2: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
}

/** The paths other than `/v2/` and their `route` label: one word each, as `v2`, `other` and the upstream metric's routes (`manifest`, `blob`). */
const NAMED_ROUTES: Readonly<Record<string, string>> = {
  '/token': 'token',
  '/.well-known/jwks.json': 'jwks',
  '/healthz': 'healthz',
  '/readyz': 'readyz',
  '/metrics': 'metrics',
};

function routeLabel(path: string): string {
  if (path === '/v2' || path.startsWith('/v2/')) return 'v2';
  return Object.hasOwn(NAMED_ROUTES, path) ? NAMED_ROUTES[path]! : 'other';
}

/** Methods whose requests carry no body (RFC 9110 gives them no meaning; no registry client sends one). */
const BODILESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * Why a request's body framing is refused, or undefined. Pure. Called before any handler: a body
 * where none belongs is how a second request hides inside the first (the upstream or a later
 * parser may frame it differently), and a Transfer-Encoding other than plain `chunked` is one the
 * upstream may decode differently from Node. Only `/token` (POST form) and `/v2/` routes take bodies.
 */
function framingProblem(
  method: string,
  route: string,
  path: string,
  headers: IncomingMessage['headers'],
): string | undefined {
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked')
    return 'Transfer-Encoding other than "chunked" is not supported';
  if (te !== undefined && cl !== undefined) return 'both Content-Length and Transfer-Encoding';
  if (!announcesBody(headers)) return undefined;
  if (BODILESS_METHODS.has(method)) return `${method} requests carry no body`;
  if (route !== 'v2' && route !== 'token') return `${route === 'other' ? 'this path' : path} takes no body`;
  return undefined;
}

export interface AppState {
  /** Set on SIGTERM: requests arriving on kept-alive connections are refused so they retry elsewhere. */
  draining: boolean;
}

/** Accepts a caller's X-Request-Id only when it is short and plain (it ends up in logs). */
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
}

/** Counts and logs one request when its response closes (finished, or cut). */
function recordRequest(
  req: IncomingMessage,
  res: ServerResponse,
  at: { label: string; path: string; requestId: string; started: number },
  logger: Logger,
  metrics?: Metrics,
): void {
  const { label, path, requestId, started } = at;
  metrics?.inFlight.dec();
  // A response that never finished (the client went away, or the connection was cut) is not
  // the status it may have started with: counted and logged as "aborted".
  const completed = res.writableFinished;
  const status = completed ? res.statusCode : 'aborted';
  metrics?.httpRequests.inc({ route: label, method: req.method ?? '', status: String(status) });
  // Probes and scrapes every few seconds would drown the access log: those only at debug. So is
  // /token: its audit line is the record, and a flood of rate-limited requests (counted in
  // metrics) must not become a flood of log lines.
  // An audited /v2/ request's event is on the log stream already, with the same facts: one line, not two.
  const level = (label === 'v2' && !requestState(req).loggedByAudit) || label === 'other' ? 'info' : 'debug';
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      requestId,
      method: req.method,
      path: path.length > 512 ? `${path.slice(0, 512)}…` : path,
      status,
      ...(!completed && res.headersSent ? { statusSent: res.statusCode } : {}),
      ms: Math.round((performance.now() - started) * 10) / 10,
      clientIP: clientIPOf(req),
      completed,
    },
    'request',
  );
}

/** The refusal a request gets before any handler sees it, or undefined. Pure. Both close the connection. */
function refusedAtDoor(
  method: string,
  label: string,
  path: string,
  headers: IncomingMessage['headers'],
  draining: boolean,
): OciError | undefined {
  const framing = framingProblem(method, label, path, headers);
  // The body is never read, so nothing after it on this connection can be trusted: close.
  if (framing)
    return new OciError(400, 'UNSUPPORTED', `${framing}: request refused`, { headers: { Connection: 'close' } });
  // Probes stay answered: /readyz itself reports "shutting down" (with its other reasons).
  if (draining && label !== 'healthz' && label !== 'readyz') {
    return new OciError(503, 'UNAVAILABLE', 'the proxy is shutting down: retry', {
      headers: { Connection: 'close', 'Retry-After': '1' },
    });
  }
  return undefined;
}

/** The handler of a route other than `/v2/`. */
function handlerFor(routes: AppRoutes, path: string): RouteHandler | undefined {
  if (path === '/token') return routes.token;
  if (path === '/.well-known/jwks.json') return routes.jwks;
  if (path === '/healthz') return routes.healthz;
  if (path === '/readyz') return routes.readyz;
  if (path === '/metrics') return routes.metrics;
  return undefined;
}

/**
 * Dispatches by path; every handler error becomes an OCI error body, never a crash. Each request
 * runs inside `requestContext`, so every log line it causes carries its request id.
 */
export function createApp(
  routes: AppRoutes,
  logger: Logger,
  metrics?: Metrics,
  state: AppState = { draining: false },
  resolveClientIP = clientIPResolver([]),
): RequestListener {
  return (req, res) => {
    resolveClientIP(req);
    const requestId = requestIdOf(req);
    requestState(req).requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    requestContext.run({ requestId }, () => serve(req, res, requestId));
  };

  function serve(req: IncomingMessage, res: ServerResponse, requestId: string): void {
    const started = performance.now();
    const rawUrl = req.url ?? '/';
    const path = rawUrl.split('?')[0]!;
    const label = routeLabel(path);
    // `/v2/` reads req.url itself; a parsed URL only for the other routes (a WHATWG parse per
    // manifest HEAD was a measurable share of its CPU). A path starting `/v2` always parses.
    let url: URL | undefined;
    if (label !== 'v2') {
      try {
        url = new URL(rawUrl.startsWith('/') ? rawUrl : '/', 'http://proxy.invalid');
      } catch {
        sendOciError(res, new OciError(400, 'UNSUPPORTED', 'malformed request URL'));
        return;
      }
    }
    metrics?.inFlight.inc();
    res.once('close', () => recordRequest(req, res, { label, path, requestId, started }, logger, metrics));
    const refused = refusedAtDoor(req.method ?? '', label, path, req.headers, state.draining);
    if (refused) {
      sendOciError(res, refused);
      return;
    }
    const handler = url ? handlerFor(routes, path) : routes.v2;
    if (!handler) {
      sendOciError(res, new OciError(404, 'UNSUPPORTED', 'not found'));
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res, url!))
      .catch((err: unknown) => {
        logger.error({ requestId, route: label, err: (err as Error)?.message }, 'request failed');
        sendOciError(res, new OciError(500, 'UNKNOWN', 'internal error'));
      });
  }
}
