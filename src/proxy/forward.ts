import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Readable, type Transform } from 'node:stream';
import type { Config, UpstreamConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { sendOciError } from '../oci/errors.js';
import {
  clientConnectionHeaders,
  clientWantsClose,
  forwardsFraming,
  frameAs,
  rewriteResponseHeaders,
  scrubRequestHeaders,
} from './headers.js';
import { createIdleWatchdog, type Exchange } from './idle-watchdog.js';
import { insufficientScope, upstreamFailureError, upstreamScopeError } from '../upstream/failure.js';
import { createRedirectFollower, type RedirectFollower } from './redirect.js';
import { exchange, type UpstreamTarget } from './exchange.js';
import { clientIPOf } from '../http/client-ip.js';
import { upstreamAgents, type UpstreamAgents } from '../http/agents.js';
import { requestState } from '../http/request-state.js';
import { trackResponse, watchUpload, type ByteCounts } from './body-watch.js';
import { refuseOtherDigest } from './digest-check.js';

type Watchdog = ReturnType<typeof createIdleWatchdog>;

/**
 * Streaming forwarder (node:http over a keep-alive agent, exchange.ts). Bodies are piped both ways with
 * back-pressure; nothing is buffered. Header hygiene (headers.ts) happens here, before the request
 * leaves: the client's credentials and hop-by-hop headers are removed, the proxy's own credentials added.
 */
export interface ForwardOptions {
  /** Path + query to request upstream (re-serialized from the authorized route). */
  path: string;
  /** The proxy's own Authorization for the upstream, if any. */
  authorization?: string;
  route: string;
  /** The upstream's status and response headers (as received), and how long it took to answer. */
  onUpstreamStatus?: (status: number, seconds: number, headers: IncomingMessage['headers']) => void;
  /** Body bytes streamed, reported once per request when the exchange ends. */
  onBytes?: (direction: 'upload' | 'download', bytes: number) => void;
  /** Live byte counts, added to per chunk: read at the response's close, they hold every byte that passed. */
  counted?: ByteCounts;
  /** Rewrites a successful (200) response body on its way to the client, streaming. */
  filterBody?: () => Transform;
  /** Replaces the default `Link` rewrite (targets moved to publicURL); undefined drops the header. */
  rewriteLink?: (link: string) => string | undefined;
  /** Maps a path of the upstream's (Location, Link) to the client's (several upstreams: names carry a prefix). */
  clientPath?: (path: string) => string;
  /** The request body a guard already read (a capped manifest), sent instead of the consumed stream. */
  body?: Buffer;
  /** A manifest by the digest its signature was verified for: a 200 naming another digest is refused (digest-check.ts). */
  expectDigest?: string;
  /** Headers a guard set for the client (RateLimit-*), over the upstream's of the same name. */
  responseHeaders?: Record<string, string>;
}

export interface Forwarder {
  forward(req: IncomingMessage, res: ServerResponse, opts: ForwardOptions): void;
  close(): void;
}

/** What one exchange needs from its request's side while the response streams (handed to the response by closure). */
interface Meta extends Exchange {
  started: number;
  route: string;
  requestId?: string;
  clientClose?: boolean;
  onStatus?: ForwardOptions['onUpstreamStatus'];
  onBytes?: ForwardOptions['onBytes'];
  counted: ByteCounts;
  proxyReq?: { destroy(err?: Error): void };
  filterBody?: () => Transform;
  rewriteLink?: ForwardOptions['rewriteLink'];
  clientPath?: ForwardOptions['clientPath'];
  /** A blob GET/HEAD with upstream.followRedirects: a storage redirect is followed by the proxy (redirect.ts). */
  follow?: boolean;
  expectDigest?: string;
  responseHeaders?: Record<string, string>;
}

/** What a forwarder needs of the config: one upstream (a target of proxy/upstreams.ts) and the proxy's own address. */
type ForwarderConfig = Pick<Config, 'publicURL' | 'tls'> & Readonly<{ upstream: UpstreamConfig }>;

interface ResponseDeps {
  config: ForwarderConfig;
  logger: Logger;
  draining: () => boolean;
  unwatch: (meta: Meta) => void;
  redirects: RedirectFollower;
}

/** The upstream's answer (exchange.ts onResponse), cleaned, on its way to the client. */
function onUpstreamResponse(
  proxyRes: IncomingMessage,
  req: IncomingMessage,
  res: ServerResponse,
  meta: Meta,
  deps: ResponseDeps,
): void {
  const status = proxyRes.statusCode ?? 0;
  const close = Boolean(meta.clientClose) || deps.draining();
  meta.onStatus?.(status, (performance.now() - meta.started) / 1000, proxyRes.headers);
  if (meta.follow && deps.redirects.follow(proxyRes, req, res, meta, close)) return;
  trackResponse(proxyRes, res, meta, deps);
  const upstreamURL = deps.config.upstream.url;
  const narrowed = status === 401 && insufficientScope(proxyRes.headers['www-authenticate']);
  rewriteResponseHeaders(proxyRes.headers, {
    upstreamURL,
    publicURL: deps.config.publicURL,
    rewriteLink: meta.rewriteLink,
    clientPath: meta.clientPath,
  });
  if (status === 401 || status === 407) {
    // The upstream (401) or an HTTP proxy before it (407) refused the proxy's own credentials:
    // the client can do nothing about that. Answer for ourselves and drain the upstream's body
    // so its connection stays reusable; nothing is piped once the response has ended.
    // A token narrower than asked (insufficient_scope): the proxy's account lacks that access upstream.
    deps.logger.error(
      { route: meta.route, requestId: meta.requestId, status },
      narrowed
        ? "upstream granted the proxy's own account less access than asked (insufficient_scope): widen its permissions upstream"
        : `upstream refused the proxy's own credentials (HTTP ${status}): check upstream.auth`,
    );
    const headers: Record<string, string> = close ? { Connection: 'close' } : {};
    sendOciError(res, narrowed ? upstreamScopeError(headers) : upstreamFailureError('credentials', { headers }));
    proxyRes.resume();
    return;
  }
  if (meta.expectDigest && refuseOtherDigest(proxyRes, res, meta.expectDigest, deps.logger)) return;
  clientConnectionHeaders(proxyRes.headers, close);
  // Ours, not the upstream's: a Docker Hub upstream reports the proxy's own account's pull limit.
  if (meta.responseHeaders) Object.assign(proxyRes.headers, meta.responseHeaders);
  if (meta.filterBody || meta.follow) {
    // selfHandleResponse: exchange.ts leaves the response to us
    const filter = status === 200 ? meta.filterBody : undefined;
    const { 'content-length': _len, 'transfer-encoding': _te, ...headers } = proxyRes.headers;
    res.writeHead(proxyRes.statusCode ?? status, filter ? headers : proxyRes.headers);
    if (filter) pipeline(proxyRes, filter(), res, (err) => err && res.destroy());
    else proxyRes.pipe(res);
  }
}

/** The exchange's state, watched for progress until the response closes. */
function track(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ForwardOptions,
  watchdog: Watchdog,
  timeoutMs: number,
): Meta {
  const meta: Meta = {
    started: performance.now(),
    filterBody: opts.filterBody,
    rewriteLink: opts.rewriteLink,
    clientPath: opts.clientPath,
    route: opts.route,
    // Socket events run in whichever request's async context created the pooled socket, so the
    // request id travels explicitly rather than through the logger's AsyncLocalStorage.
    requestId: requestState(req).requestId,
    clientClose: clientWantsClose(req),
    onStatus: opts.onUpstreamStatus,
    onBytes: opts.onBytes,
    counted: opts.counted ?? { upload: 0, download: 0 },
    expectDigest: opts.expectDigest,
    responseHeaders: opts.responseHeaders,
    progress: 0,
    onIdle: () => {
      // Not even a socket yet (the agent's pool is exhausted): nothing upstream to abort.
      if (!meta.proxyReq) return void res.destroy();
      meta.proxyReq.destroy(Object.assign(new Error(`no progress for ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    },
  };
  watchdog.watch(meta);
  res.once('close', () => watchdog.unwatch(meta));
  return meta;
}

/** The exchange's error callback: the upstream could not be reached, or stopped answering. */
function onProxyError(err: NodeJS.ErrnoException, res: ServerResponse, meta: Meta, logger: Logger): void {
  // (a fully read request is auto-destroyed, so only the response side tells that the client left)
  if (res.headersSent || res.destroyed || res.socket === null || res.socket.destroyed) {
    res.destroy();
    return;
  }
  const timedOut = err.code === 'ETIMEDOUT';
  logger.warn(
    {
      requestId: meta.requestId,
      route: meta.route,
      code: err.code,
      err: err.message,
      ms: Math.round(performance.now() - meta.started),
    },
    timedOut ? 'upstream timed out' : 'upstream request failed',
  );
  sendOciError(res, upstreamFailureError(timedOut ? 'timeout' : 'unreachable', { code: err.code }));
}

/**
 * `agents`: the upstream's pools (upstream/upstream.ts, closed by their owner); absent, the
 * forwarder makes its own and closes them with itself.
 */
export function createForwarder(
  config: ForwarderConfig,
  logger: Logger,
  draining: () => boolean = () => false,
  agents?: UpstreamAgents,
): Forwarder {
  const { upstream } = config;
  const watchdog = createIdleWatchdog(upstream.timeout);
  const own = agents ? undefined : upstreamAgents(upstream);
  const { forward: agent, ca } = agents ?? own!;
  const https = upstream.url.startsWith('https:');
  const target: UpstreamTarget = { url: new URL(upstream.url), agent, ...(ca && https ? { ca } : {}) };
  const redirects = createRedirectFollower(upstream, logger, ca);
  const deps: ResponseDeps = { config, logger, draining, unwatch: (meta) => watchdog.unwatch(meta), redirects };

  return {
    forward(req, res, opts) {
      const meta = track(req, res, opts, watchdog, upstream.timeout);
      meta.follow =
        upstream.followRedirects && opts.route === 'blob' && (req.method === 'GET' || req.method === 'HEAD');
      scrubRequestHeaders(req.headers, {
        clientIP: clientIPOf(req),
        tls: Boolean(config.tls),
        authorization: opts.authorization,
        plainBody: opts.filterBody !== undefined,
      });
      req.url = opts.path;
      // A body a guard read goes up with its exact length (a chunked one included).
      if (opts.body) frameAs(req.headers, opts.body.length, meta);
      // No body leaves without explicit framing: an unframed request sends an empty one (no
      // per-chunk work for the framed ones), and a byte from the client cuts the exchange.
      const unframed = !forwardsFraming(req.method, req.headers);
      exchange(req, res, target, {
        onSocket: (proxyReq) => (meta.proxyReq = proxyReq),
        onResponse: (proxyRes) => onUpstreamResponse(proxyRes, req, res, meta, deps),
        onError: (err) => onProxyError(err, res, meta, logger),
        selfHandleResponse: Boolean(opts.filterBody || meta.follow),
        ...(opts.body ? { body: Readable.from([opts.body]) } : unframed ? { body: Readable.from([]) } : {}),
      });
      if (!opts.body) watchUpload(req, res, meta, unframed, logger);
    },
    close() {
      watchdog.close();
      void own?.close();
      redirects.close();
    },
  };
}
