import { Agent as HttpAgent, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { readFileSync } from 'node:fs';
import { pipeline, Readable, type Transform } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';
import { createIdleWatchdog, type Exchange } from './idle-watchdog.js';
import { clientIPOf } from '../server/client-ip.js';

/**
 * Streaming forwarder (http-proxy-3 over a keep-alive agent). Bodies are piped both ways with
 * back-pressure; nothing is buffered. Header hygiene happens here, before the request leaves:
 * the client's credentials and hop-by-hop headers are removed, the proxy's own credentials added.
 */

/** Request headers never forwarded upstream. */
const STRIP_REQUEST = new Set([
  'authorization', 'cookie', 'proxy-authorization', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect', 'forwarded',
  // Headers that reverse proxies and frameworks believe for the client's address, the request's URL
  // or its method: the upstream (or something in front of it) must only ever see the proxy's.
  'x-real-ip', 'x-client-ip', 'x-cluster-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-host', 'x-url-scheme', 'x-scheme', 'front-end-https',
  'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override',
]);
/** Whole families: `X-Forwarded-*` (for, host, proto, port, prefix, server, uri…) and `X-Original-*` (url, method, host…). */
const STRIP_REQUEST_PREFIXES = ['x-forwarded-', 'x-original-'];

export function isStrippedRequestHeader(name: string): boolean {
  const h = name.toLowerCase();
  return STRIP_REQUEST.has(h) || STRIP_REQUEST_PREFIXES.some((p) => h.startsWith(p));
}

/** Response headers that challenge for or answer credentials: the upstream's are for the proxy, never for clients. */
const AUTH_RESPONSE_HEADERS = ['www-authenticate', 'proxy-authenticate', 'authentication-info', 'proxy-authentication-info'];

/** Which side failed when a client gets a 5xx of the proxy's own (never the client's side: it was authorized). */
export type UpstreamFailure = 'unreachable' | 'timeout' | 'credentials' | 'unconfigured';

/**
 * What the client is told about an upstream failure. Pure. The OCI body says which side failed
 * without the upstream's address or error text (those are logged). The same words go into the
 * status line's reason phrase, because Docker, containerd and containers/image ignore 5xx bodies and
 * print only the status line ("received unexpected HTTP status: 502 Bad Gateway (…)").
 */
export function upstreamFailure(kind: UpstreamFailure, code?: string): { status: number; message: string; reason: string } {
  switch (kind) {
    case 'unreachable':
      return { status: 502, message: `upstream registry unreachable${code ? ` (${code})` : ''}: the registry behind this proxy did not answer; your credentials were accepted`, reason: 'Bad Gateway (upstream registry unreachable)' };
    case 'timeout':
      return { status: 504, message: 'upstream registry did not answer in time: the registry behind this proxy is slow or stuck; your credentials were accepted', reason: 'Gateway Timeout (upstream registry did not answer in time)' };
    case 'credentials':
      return { status: 502, message: "upstream registry rejected the proxy's own credentials: the proxy's upstream.auth needs fixing; your credentials were accepted", reason: "Bad Gateway (upstream rejected the proxy's credentials)" };
    case 'unconfigured':
      return { status: 503, message: 'no upstream registry is configured on this proxy', reason: 'Service Unavailable (no upstream registry configured)' };
  }
}

/**
 * Which side a failure to obtain the proxy's own upstream credentials (a secret file, or the
 * registry-token dance) lies on. Pure. A socket error: the upstream or its token server is
 * unreachable; an unreadable secret file, or anything the upstream answered: those credentials.
 */
export function upstreamAuthFailureKind(err: unknown): 'unreachable' | 'credentials' {
  const e = err as { code?: unknown; path?: unknown } | undefined;
  return typeof e?.code === 'string' && e.code !== '' && typeof e.path !== 'string' ? 'unreachable' : 'credentials';
}

/** Answers an upstream failure with an OCI body and the telling reason phrase. */
export function sendUpstreamFailure(res: ServerResponse, kind: UpstreamFailure, opts: { code?: string; headers?: Record<string, string> } = {}): void {
  const f = upstreamFailure(kind, opts.code);
  sendOciError(res, new OciError(f.status, 'UNAVAILABLE', f.message, undefined, opts.headers ?? {}, f.reason));
}

export interface ForwardOptions {
  /** Path + query to request upstream (re-serialized from the authorized route). */
  path: string;
  /** The proxy's own Authorization for the upstream, if any. */
  authorization?: string;
  route: string;
  onUpstreamStatus?: (status: number, seconds: number) => void;
  /** Body bytes streamed, reported once per request when the exchange ends. */
  onBytes?: (direction: 'upload' | 'download', bytes: number) => void;
  /** Rewrites a successful (200) response body on its way to the client, streaming. */
  filterBody?: () => Transform;
  /** Replaces the default `Link` rewrite (targets moved to publicURL); undefined drops the header. */
  rewriteLink?: (link: string) => string | undefined;
}

export interface Forwarder {
  forward(req: IncomingMessage, res: ServerResponse, opts: ForwardOptions): void;
  close(): void;
}

/**
 * True when the forwarded head frames a request body explicitly. Pure. Without Content-Length or
 * Transfer-Encoding, Node's client writes a GET/HEAD/DELETE body raw after the head (and
 * http-proxy rewrites a DELETE/OPTIONS without Content-Length to `Content-Length: 0`, dropping
 * Transfer-Encoding): the upstream would parse those bytes as the next request on a pooled connection.
 */
export function forwardsFraming(method: string | undefined, headers: IncomingMessage['headers']): boolean {
  if (headers['content-length'] !== undefined) return true;
  return headers['transfer-encoding'] !== undefined && method !== 'DELETE' && method !== 'OPTIONS';
}

export function rewriteLocation(location: string, upstreamURL: string, publicURL: string): string {
  let target: URL;
  const upstream = new URL(upstreamURL);
  try {
    target = new URL(location, upstream);
  } catch {
    return location;
  }
  // Redirects to other hosts (S3-style storage, as ECR and Distribution's redirect mode do) pass untouched.
  const isRelative = !/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('//');
  // Compare host:port only: registries build absolute URLs with the X-Forwarded-Proto we send.
  if (!isRelative && target.host !== upstream.host) return location;
  // An upstream served under a path prefix (`upstream.url: http://host/prefix`, Distribution's
  // `http.prefix`) names its URLs with the prefix; clients know the proxy's `/v2/` only.
  const prefix = upstream.pathname.replace(/\/+$/, '');
  const path = prefix && target.pathname.startsWith(`${prefix}/`) ? target.pathname.slice(prefix.length) : target.pathname;
  return `${publicURL}${path}${target.search}`;
}

/** Every `<target>` of a `Link` header rewritten as a Location would be (pagination of tags, referrers). */
export function rewriteLinkTargets(link: string, upstreamURL: string, publicURL: string): string {
  return link.replace(/<([^>]*)>/g, (_m, target: string) => `<${rewriteLocation(target, upstreamURL, publicURL)}>`);
}

interface Meta extends Exchange {
  started: number;
  route: string;
  requestId?: string;
  clientClose?: boolean;
  onStatus?: ForwardOptions['onUpstreamStatus'];
  onBytes?: ForwardOptions['onBytes'];
  proxyReq?: { destroy(err?: Error): void };
  filterBody?: () => Transform;
  rewriteLink?: ForwardOptions['rewriteLink'];
}

export function createForwarder(config: Config, logger: Logger, draining: () => boolean = () => false): Forwarder {
  const upstream = config.upstream!;
  const isHttps = upstream.url.startsWith('https:');
  // No socket timeouts here (see idle-watchdog.ts): the watchdog bounds every exchange instead.
  const agentOptions = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64 };
  const watchdog = createIdleWatchdog(upstream.timeout);
  const agent = isHttps
    ? new HttpsAgent({ ...agentOptions, ...(upstream.caFile ? { ca: readFileSync(upstream.caFile, 'utf8') } : {}) })
    : new HttpAgent(agentOptions);
  const proxy = createProxyServer({
    target: upstream.url,
    agent,
    changeOrigin: true,
    xfwd: false,
    secure: true,
    ...(upstream.caFile && isHttps ? { ca: readFileSync(upstream.caFile, 'utf8') } : {}),
  });

  proxy.on('proxyReq', (proxyReq, req) => {
    const meta = (req as IncomingMessage & { rap?: Meta }).rap;
    if (meta) meta.proxyReq = proxyReq;
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const meta = (req as IncomingMessage & { rap?: Meta }).rap;
    const status = proxyRes.statusCode ?? 0;
    let bytes = 0;
    proxyRes.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (meta) meta.progress++;
    });
    proxyRes.once('close', () => {
      if (meta) watchdog.unwatch(meta);
      if (bytes > 0) meta?.onBytes?.('download', bytes);
      // A response cut short upstream (reset, idle timeout) must be cut short for the client too:
      // pipe() alone would leave the client waiting forever on a body that will never complete.
      if (proxyRes.complete) return;
      logger.warn({ requestId: meta?.requestId, route: meta?.route, status }, 'upstream response ended before its body was complete: cutting the client connection');
      res.destroy();
    });
    meta?.onStatus?.(status, (performance.now() - (meta?.started ?? 0)) / 1000);
    const loc = proxyRes.headers.location;
    if (typeof loc === 'string') proxyRes.headers.location = rewriteLocation(loc, upstream.url, config.publicURL);
    const link = proxyRes.headers.link;
    if (typeof link === 'string') {
      const rewritten = meta?.rewriteLink ? meta.rewriteLink(link) : rewriteLinkTargets(link, upstream.url, config.publicURL);
      if (rewritten === undefined) delete proxyRes.headers.link;
      else proxyRes.headers.link = rewritten;
    }
    // The upstream's challenges are addressed to the proxy (its realm, its credentials), whatever
    // the status: none reaches a client.
    for (const h of AUTH_RESPONSE_HEADERS) delete proxyRes.headers[h];
    if (status === 401 || status === 407) {
      // The upstream (401) or an HTTP proxy before it (407) refused the proxy's own credentials:
      // the client can do nothing about that. Answer for ourselves and drain the upstream's body
      // so its connection stays reusable; http-proxy pipes nothing once the response has ended.
      logger.error({ route: meta?.route, requestId: meta?.requestId, status }, `upstream refused the proxy's own credentials (HTTP ${status}): check upstream.auth`);
      sendUpstreamFailure(res, 'credentials', { headers: meta?.clientClose || draining() ? { Connection: 'close' } : {} });
      proxyRes.resume();
      return;
    }
    delete proxyRes.headers['set-cookie'];
    // Hop-by-hop: the upstream's connection handling is not the client's. Close the client's
    // connection when it asked to, or when we are draining (so it reconnects to another replica).
    delete proxyRes.headers['keep-alive'];
    proxyRes.headers.connection = meta?.clientClose || draining() ? 'close' : 'keep-alive';
    if (meta?.filterBody) {
      // selfHandleResponse: http-proxy leaves the response to us
      const filtered = status === 200;
      const { 'content-length': _len, 'transfer-encoding': _te, ...headers } = proxyRes.headers;
      res.writeHead(proxyRes.statusCode ?? status, filtered ? headers : proxyRes.headers);
      if (filtered) pipeline(proxyRes, meta.filterBody(), res, (err) => err && res.destroy());
      else proxyRes.pipe(res);
    }
  });

  return {
    forward(req, res, opts) {
      const clientClose = /(?:^|,)\s*close\s*(?:,|$)/i.test(req.headers.connection ?? '') || (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && !/keep-alive/i.test(req.headers.connection ?? ''));
      for (const h of Object.keys(req.headers)) if (isStrippedRequestHeader(h)) delete req.headers[h];
      const remote = clientIPOf(req);
      if (remote) req.headers['x-forwarded-for'] = remote;
      req.headers['x-forwarded-proto'] = config.tls ? 'https' : 'http';
      if (opts.authorization) req.headers.authorization = opts.authorization;
      req.url = opts.path;
      const started = performance.now();
      // Socket events run in whichever request's async context created the pooled socket, so the
      // request id travels explicitly rather than through the logger's AsyncLocalStorage.
      const requestId = (req as IncomingMessage & { requestId?: string }).requestId;
      if (opts.filterBody) delete req.headers['accept-encoding']; // the filter reads plain JSON
      const meta: Meta = {
        started,
        filterBody: opts.filterBody,
        rewriteLink: opts.rewriteLink,
        route: opts.route,
        requestId,
        clientClose,
        onStatus: opts.onUpstreamStatus,
        onBytes: opts.onBytes,
        progress: 0,
        onIdle: () => {
          // Not even a socket yet (the agent's pool is exhausted): nothing upstream to abort.
          if (!meta.proxyReq) return void res.destroy();
          meta.proxyReq.destroy(Object.assign(new Error(`no progress for ${upstream.timeout} ms`), { code: 'ETIMEDOUT' }));
        },
      };
      (req as IncomingMessage & { rap?: Meta }).rap = meta;
      watchdog.watch(meta);
      res.once('close', () => watchdog.unwatch(meta));
      // No body leaves without explicit framing: an unframed request sends an empty one (no
      // per-chunk work for the framed ones), and a byte from the client cuts the exchange (below).
      const unframed = !forwardsFraming(req.method, req.headers);
      const webOptions = { ...(opts.filterBody ? { selfHandleResponse: true } : {}), ...(unframed ? { buffer: Readable.from([]) } : {}) };
      proxy.web(req, res, webOptions, (err: NodeJS.ErrnoException) => {
        // (a fully read request is auto-destroyed, so only the response side tells that the client left)
        if (res.headersSent || res.destroyed || res.socket === null || res.socket.destroyed) {
          res.destroy();
          return;
        }
        const elapsed = performance.now() - started;
        const timedOut = err.code === 'ETIMEDOUT';
        logger.warn({ requestId, route: opts.route, code: err.code, err: err.message, ms: Math.round(elapsed) }, timedOut ? 'upstream timed out' : 'upstream request failed');
        sendUpstreamFailure(res, timedOut ? 'timeout' : 'unreachable', { code: err.code });
      });
      if (unframed) {
        // The app refuses such requests at the door (server/app.ts framingProblem); reaching here
        // means the parser framed a body the forwarded head does not carry.
        req.once('data', () => {
          logger.error({ requestId, route: opts.route, method: req.method }, 'request body without forwarded framing: exchange cut');
          meta.proxyReq?.destroy();
          res.destroy();
        });
      }
      // proxy.web has piped the request synchronously, so this listener sees every chunk; it
      // does not resume a source that back-pressure paused.
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        meta.progress++;
      });
      if (opts.onBytes) req.once('close', () => bytes > 0 && opts.onBytes!('upload', bytes));
    },
    close() {
      watchdog.close();
      proxy.close();
      agent.destroy();
    },
  };
}
