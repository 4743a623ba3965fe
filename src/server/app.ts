import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../log.js';
import { OciError, sendOciError, API_VERSION, API_VERSION_HEADER } from '../oci/errors.js';
import type { Metrics } from './metrics.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface AppRoutes {
  token: RouteHandler;
  jwks: RouteHandler;
  healthz: RouteHandler;
  readyz: RouteHandler;
  metrics: RouteHandler;
  v2: RouteHandler;
  /** Extra exact-path routes (the `--dev` issuer's discovery and JWKS). */
  extra?: Map<string, RouteHandler>;
}

function routeLabel(path: string): string {
  if (path === '/v2' || path.startsWith('/v2/')) return 'v2';
  if (path === '/token' || path === '/.well-known/jwks.json' || path === '/healthz' || path === '/readyz' || path === '/metrics') return path;
  return 'other';
}

/** Dispatches by path; every handler error becomes an OCI error body, never a crash. */
export function createApp(routes: AppRoutes, logger: Logger, metrics?: Metrics): RequestListener {
  return (req, res) => {
    const requestId = (typeof req.headers['x-request-id'] === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(req.headers['x-request-id']) ? req.headers['x-request-id'] : undefined) ?? randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const rawUrl = req.url ?? '/';
    let url: URL;
    try {
      url = new URL(rawUrl.startsWith('/') ? rawUrl : '/', 'http://proxy.invalid');
    } catch {
      sendOciError(res, new OciError(400, 'UNSUPPORTED', 'malformed request URL'));
      return;
    }
    const path = rawUrl.split('?')[0]!;
    const label = routeLabel(path);
    if (metrics) res.once('finish', () => metrics.httpRequests.inc({ route: label, method: req.method ?? '', status: String(res.statusCode) }));
    let handler: RouteHandler | undefined;
    if (label === 'v2') handler = routes.v2;
    else if (path === '/token') handler = routes.token;
    else if (path === '/.well-known/jwks.json') handler = routes.jwks;
    else if (path === '/healthz') handler = routes.healthz;
    else if (path === '/readyz') handler = routes.readyz;
    else if (path === '/metrics') handler = routes.metrics;
    else handler = routes.extra?.get(path);
    if (!handler) {
      sendOciError(res, new OciError(404, 'UNSUPPORTED', 'not found'));
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res, url))
      .catch((err: unknown) => {
        logger.error({ requestId, route: label, err: (err as Error)?.message }, 'request failed');
        sendOciError(res, new OciError(500, 'UNKNOWN', 'internal error'));
      });
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export { API_VERSION, API_VERSION_HEADER };
