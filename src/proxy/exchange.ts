import {
  request as httpRequest,
  type Agent,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';

/**
 * One exchange with the upstream over node:http(s): what http-proxy-3's `web()` did with the options
 * this proxy used (changeOrigin, no X-Forwarded-* of its own, TLS verified, a keep-alive agent), step
 * for step, without its per-request option merging, three WHATWG URL parses and event relays — a
 * fifth of the proxy's own CPU per manifest HEAD in a profile (bench, 16 clients).
 */

export interface UpstreamTarget {
  /** `upstream.url`, parsed once: no query or fragment (the config refuses them). */
  url: URL;
  agent: Agent;
  /** Extra trusted CA (PEM) for an https upstream. */
  ca?: string;
}

interface ExchangeHandlers {
  /** The upstream request, once it has a socket (the idle watchdog aborts it through this). */
  onSocket(proxyReq: ClientRequest): void;
  /** The upstream's answer, before anything of it reaches the client (it may answer for itself). */
  onResponse(proxyRes: IncomingMessage): void;
  /** The upstream could not be reached or failed mid-exchange (not when the client left first). */
  onError(err: NodeJS.ErrnoException): void;
  /** The caller writes the response itself (a filtered body, a followed redirect). */
  selfHandleResponse: boolean;
  /** Sent instead of the client's body (an unframed request sends an empty one). */
  body?: Readable;
}

/** The upstream path: the upstream's own path prefix joined to the route's path (http-proxy's urlJoin for two segments). Pure. */
export function upstreamPath(base: URL, path: string): string {
  const prefix = base.pathname;
  if (prefix.endsWith('/')) return path.startsWith('/') ? `${prefix}${path.slice(1)}` : `${prefix}${path}`;
  return path.startsWith('/') ? `${prefix}${path}` : `${prefix}/${path}`;
}

/** Pseudo-headers and connection headers an HTTP/2 request must not pass to an HTTP/1.1 upstream. */
const HTTP2_ONLY = [':method', ':path', ':scheme', ':authority', 'connection', 'keep-alive'];

/** The request head for the upstream: the (already scrubbed) client headers, Host the upstream's. Pure. */
export function upstreamHeaders(
  req: Pick<IncomingMessage, 'headers' | 'httpVersionMajor'>,
  target: URL,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ...req.headers };
  delete headers.trailer;
  if (req.httpVersionMajor > 1) for (const h of HTTP2_ONLY) delete headers[h];
  headers.host = target.host;
  return headers;
}

/** The upstream's head onto the client's response: status, and every header that has a value. */
function copyHead(req: IncomingMessage, res: ServerResponse, proxyRes: IncomingMessage): void {
  const headers = proxyRes.headers;
  delete headers['transfer-encoding'];
  if (req.httpVersion === '1.0') headers.connection = req.headers.connection || 'close';
  else if (req.httpVersion !== '2.0' && !headers.connection)
    headers.connection = req.headers.connection || 'keep-alive';
  for (const key in headers) {
    if (req.httpVersionMajor > 1 && (key === 'connection' || key === 'keep-alive')) continue;
    const value = headers[key];
    if (value !== undefined) res.setHeader(key.trim(), value);
  }
  res.statusCode = proxyRes.statusCode!;
  if (proxyRes.statusMessage && req.httpVersionMajor === 1) res.statusMessage = proxyRes.statusMessage;
}

/** Sends `req` (method, headers, `req.url` as the path) to the target and streams the answer back to `res`. */
export function exchange(
  req: IncomingMessage,
  res: ServerResponse,
  target: UpstreamTarget,
  on: ExchangeHandlers,
): void {
  // A DELETE or OPTIONS without Content-Length goes with `Content-Length: 0` and no Transfer-Encoding.
  if ((req.method === 'DELETE' || req.method === 'OPTIONS') && !req.headers['content-length']) {
    req.headers['content-length'] = '0';
    delete req.headers['transfer-encoding'];
  }
  const { url, agent } = target;
  const https = url.protocol === 'https:';
  const hostname =
    url.hostname.startsWith('[') && url.hostname.endsWith(']') ? url.hostname.slice(1, -1) : url.hostname;
  const proxyReq = (https ? httpsRequest : httpRequest)({
    hostname,
    port: Number(url.port || (https ? 443 : 80)),
    method: req.method,
    path: upstreamPath(url, req.url ?? '/'),
    headers: upstreamHeaders(req, url),
    agent,
    ...(https ? { rejectUnauthorized: true, ...(target.ca ? { ca: target.ca } : {}) } : {}),
  });
  proxyReq.once('socket', () => on.onSocket(proxyReq));
  // The client left before the answer was complete: nothing upstream is wanted any more.
  res.once('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });
  const onError = (err: NodeJS.ErrnoException) => {
    if (req.socket.destroyed && err.code === 'ECONNRESET') return void proxyReq.destroy();
    on.onError(err);
  };
  req.on('error', onError);
  proxyReq.on('error', onError);
  (on.body ?? req).pipe(proxyReq);
  proxyReq.once('response', (proxyRes) => {
    on.onResponse(proxyRes);
    if (on.selfHandleResponse) return;
    if (!res.headersSent) copyHead(req, res, proxyRes);
    if (!res.writableEnded) proxyRes.pipe(res);
  });
}
