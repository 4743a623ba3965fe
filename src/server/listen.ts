import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';
import { guardConnections, peerOf, type Refusal } from './connections.js';

export interface Listener {
  server: Server;
  /** Base URL the listener is reachable at (its real port, even when configured as 0). */
  url: string;
  /** Stops accepting, lets in-flight requests finish within `graceMs`, then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/** Why a request head is refused before any handler sees it, or undefined. Pure. */
export function headProblem(rawHeaderEntries: number, maxHeaderCount: number): OciError | undefined {
  if (rawHeaderEntries / 2 <= maxHeaderCount) return undefined;
  return new OciError(431, 'UNSUPPORTED', `more than ${maxHeaderCount} header lines in one request`, {
    headers: { Connection: 'close' },
  });
}

/** The status line and message for a request Node's HTTP parser rejected (its `clientError` code). Pure. */
export function clientErrorAnswer(code: string | undefined, maxHeaderBytes: number): [status: string, message: string] {
  if (code === 'HPE_HEADER_OVERFLOW')
    return ['431 Request Header Fields Too Large', `request headers larger than ${maxHeaderBytes} bytes`];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT')
    return ['408 Request Timeout', 'request headers did not arrive in time'];
  return ['400 Bad Request', 'malformed HTTP request'];
}

/** The URL a listener bound to `host` (a wildcard is reached on loopback) and `port` is reachable at. Pure. */
export function listenerUrl(tls: boolean, host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${tls ? 'https' : 'http'}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** Probes a connection refused for a cap is still answered on: a liveness check must not fail because the proxy is busy. */
const PROBES = new Set(['/healthz', '/readyz']);

/**
 * What a request on a connection refused for a cap (`refusal`) gets: a probe is served (and the
 * connection then closed), anything else a 503 saying which cap. Pure.
 */
export function refusedAnswer(refusal: Refusal, url: string | undefined, peer: string): 'serve' | OciError {
  if (PROBES.has((url ?? '').split('?')[0]!)) return 'serve';
  const message =
    refusal === 'peer' ? `too many connections from ${peer}: retry` : 'the proxy is at its connection limit: retry';
  return new OciError(503, 'UNAVAILABLE', message, { headers: { 'Retry-After': '1', Connection: 'close' } });
}

/**
 * `listener` behind the checks every request passes first: a connection refused for a cap (in
 * `refused`) gets a 503 or, for a probe, its answer; a head with too many lines a 431.
 *
 * Every header line the parser saw must be in req.headers: Node's default maxHeadersCount keeps
 * only the first ~1000 while llhttp still frames the body by a Content-Length after them, so a
 * framing header could be used by the parser yet never forwarded. Unlimited here (maxHeaderBytes
 * bounds the head), and a head with too many lines is refused, never truncated.
 */
function guardRequests(
  listener: RequestListener,
  maxHeaderCount: number,
  logger: Logger,
  refused: WeakMap<Socket, Refusal>,
): RequestListener {
  return (req, res) => {
    const refusal = refused.get(req.socket);
    if (refusal) {
      const answer = refusedAnswer(refusal, req.url, peerOf(req.socket));
      if (answer !== 'serve') return void sendOciError(res, answer);
      res.shouldKeepAlive = false; // the connection is over a cap: close it after this answer
    }
    const problem = headProblem(req.rawHeaders.length, maxHeaderCount);
    if (problem) {
      logger.info(
        { remote: peerOf(req.socket), method: req.method, headerLines: req.rawHeaders.length / 2 },
        'request refused: too many header lines',
      );
      sendOciError(res, problem);
      return;
    }
    listener(req, res);
  };
}

function createServer(config: Config, listener: RequestListener): Server {
  const options = {
    maxHeaderSize: config.limits.maxHeaderBytes,
    // Blob uploads may take long: no whole-request deadline, but headers must arrive promptly.
    // Bodies are bounded by the idle sweep (connections.ts: no progress) and, where the proxy reads
    // them itself (/token), by a deadline of their own.
    requestTimeout: 0,
    headersTimeout: 30_000,
    keepAliveTimeout: 65_000,
  };
  const server: Server = config.tls
    ? (createHttpsServer(
        { ...options, cert: tlsFile(config, 'certFile'), key: tlsFile(config, 'keyFile') },
        listener,
      ) as unknown as Server)
    : createHttpServer(options, listener);
  server.maxHeadersCount = 0; // see guardRequests
  return server;
}

/**
 * A TLS ClientHello on the plain port (skopeo/podman probe HTTPS first with --tls-verify=false),
 * garbage, or oversized headers: answer 400/408/431 quietly and keep serving. Not when a response
 * to this request has started (e.g. refused at its head, then its body failed to parse): a second
 * answer would be read as the answer to the client's next request. Node's own default handler
 * makes the same check on the same internal field.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, maxHeaderBytes: number, logger: Logger): void {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
  if (inFlight?.headersSent) {
    socket.destroySoon();
  } else if (socket.writable) {
    const [status, message] = clientErrorAnswer(err.code, maxHeaderBytes);
    const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message }] });
    socket.end(
      `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  } else {
    socket.destroy();
  }
  logger.debug({ code: err.code, remote: socket.remoteAddress }, 'malformed request rejected');
}

/** `tls.certFile` or `tls.keyFile`, read; one that cannot be is a ConfigError naming the file, the key and the path. */
function tlsFile(config: Config, key: 'certFile' | 'keyFile'): Buffer {
  const path = config.tls![key];
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'cannot be read (permission denied)'
          : (err as Error).message;
    throw new ConfigError(
      config.file,
      `tls.${key}`,
      `${path} ${why}: fix the path, or remove tls: to serve plain HTTP behind a TLS-terminating ingress`,
    );
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets in-flight requests finish within `graceMs`, then closes the rest. */
function closeServer(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

export async function startListener(config: Config, listener: RequestListener, logger: Logger): Promise<Listener> {
  const refused = new WeakMap<Socket, Refusal>();
  const server = createServer(config, guardRequests(listener, config.limits.maxHeaderCount, logger, refused));
  guardConnections(server, config, logger, refused);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
    answerClientError(err, socket, config.limits.maxHeaderBytes, logger),
  );
  if (config.tls)
    server.on('tlsClientError', (err: Error) => logger.debug({ err: err.message }, 'TLS handshake failed'));

  await listen(server, config.listen.port, config.listen.host);
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  return {
    server,
    url: listenerUrl(Boolean(config.tls), config.listen.host, port),
    close: (graceMs = 25_000) => closeServer(server, graceMs),
  };
}
