import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { isIP, type BlockList, type Socket } from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';
import { parseTrustedProxies } from './client-ip.js';

export interface Listener {
  server: Server;
  /** Base URL the listener is reachable at (its real port, even when configured as 0). */
  url: string;
  /** Stops accepting, lets in-flight requests finish within `graceMs`, then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/** How long a connection refused for its peer's connection cap may take to send the request we answer 503 to. */
const REFUSED_GRACE_MS = 2_000;

/** Why a request head is refused before any handler sees it, or undefined. Pure. */
export function headProblem(rawHeaderEntries: number, maxHeaderCount: number): OciError | undefined {
  if (rawHeaderEntries / 2 <= maxHeaderCount) return undefined;
  return new OciError(431, 'UNSUPPORTED', `more than ${maxHeaderCount} header lines in one request`, undefined, { Connection: 'close' });
}

/**
 * What to do with a new connection from a peer with `open` admitted and `refusing` refused ones
 * still open. Pure. Under the cap (0: none; trusted proxies exempt): admit. Over it: answer 503 —
 * but only as many refusals at a time as the cap, so that a flood of connections from one address
 * cannot hold descriptors through its refusals either: beyond that they are dropped at once.
 */
export function connectionVerdict(open: number, refusing: number, limit: number, trustedPeer: boolean): 'admit' | 'refuse' | 'drop' {
  if (limit === 0 || trustedPeer || open < limit) return 'admit';
  return refusing < limit ? 'refuse' : 'drop';
}

/** The TCP peer as client-ip.ts reports it (IPv4-mapped IPv6 as plain IPv4). */
function peerOf(socket: Socket): string {
  const ip = socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function isTrusted(list: BlockList | undefined, ip: string): boolean {
  const family = isIP(ip);
  return list !== undefined && family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

export async function startListener(config: Config, listener: RequestListener, logger: Logger): Promise<Listener> {
  const limits = config.limits;
  const options = {
    maxHeaderSize: limits.maxHeaderBytes,
    // Blob uploads may take long: no whole-request deadline, but headers must arrive promptly.
    // Bodies are bounded by the idle sweep below (no progress) and, where the proxy reads them
    // itself (/token), by a deadline of their own.
    requestTimeout: 0,
    headersTimeout: 30_000,
    keepAliveTimeout: 65_000,
  };
  const refused = new WeakSet<Socket>();
  // Every header line the parser saw must be in req.headers: Node's default maxHeadersCount keeps
  // only the first ~1000 while llhttp still frames the body by a Content-Length after them, so a
  // framing header could be used by the parser yet never forwarded. Unlimited here (maxHeaderBytes
  // bounds the head), and a head with too many lines is refused, never truncated.
  const guarded: RequestListener = (req, res) => {
    if (refused.has(req.socket)) {
      sendOciError(res, new OciError(503, 'UNAVAILABLE', `too many connections from ${peerOf(req.socket)}: retry`, undefined, { 'Retry-After': '1', Connection: 'close' }));
      return;
    }
    const problem = headProblem(req.rawHeaders.length, limits.maxHeaderCount);
    if (problem) {
      logger.info({ remote: peerOf(req.socket), method: req.method, headerLines: req.rawHeaders.length / 2 }, 'request refused: too many header lines');
      sendOciError(res, problem);
      return;
    }
    listener(req, res);
  };
  const server: Server = config.tls
    ? (createHttpsServer({ ...options, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, guarded) as unknown as Server)
    : createHttpServer(options, guarded);
  server.maxHeadersCount = 0;

  // Connection caps. The total guards against running out of file descriptors (Node closes
  // connections beyond it as they are accepted, spending nothing on them); the per-peer cap keeps
  // one address from taking all of them. Peers in trustedProxies carry many clients and are exempt.
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  const trusted = config.trustedProxies.length ? parseTrustedProxies(config.trustedProxies) : undefined;
  const perPeer = new Map<string, number>();
  const refusingPerPeer = new Map<string, number>();
  const count = (m: Map<string, number>, peer: string, d: number) => {
    const n = (m.get(peer) ?? 0) + d;
    if (n > 0) m.set(peer, n);
    else m.delete(peer);
  };
  let refusedCount = 0;
  server.on('drop', () => refusedCount++);
  // Idle sweep: a connection whose byte counters have not moved for idleTimeout is closed. Read
  // from the sockets' own counters once a period: no timer re-armed per chunk (see
  // proxy/idle-watchdog.ts for what that costs), and a slow transfer that moves at all is never cut.
  const idle = new Map<Socket, { seen: number; since: number }>();
  const moved = (s: Socket) => s.bytesRead + (s.bytesWritten ?? 0);
  server.prependListener('connection', (socket: Socket) => {
    const peer = peerOf(socket);
    const open = perPeer.get(peer) ?? 0;
    const verdict = connectionVerdict(open, refusingPerPeer.get(peer) ?? 0, limits.maxConnectionsPerClient, isTrusted(trusted, peer));
    if (verdict !== 'admit') {
      refusedCount++;
      logger.debug({ remote: peer, open, limit: limits.maxConnectionsPerClient, verdict }, 'connection refused: per-client connection cap');
      // Over TLS there is no cheap way to answer before a handshake: close. In plain HTTP the
      // request gets a 503 (guarded above) if its head arrives promptly; the socket goes either way.
      if (verdict === 'drop' || config.tls) return void socket.destroy();
      refused.add(socket);
      count(refusingPerPeer, peer, 1);
      socket.once('close', () => count(refusingPerPeer, peer, -1));
      setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
      return;
    }
    count(perPeer, peer, 1);
    if (limits.idleTimeout > 0) idle.set(socket, { seen: 0, since: performance.now() });
    socket.once('close', () => {
      idle.delete(socket);
      count(perPeer, peer, -1);
    });
  });
  let lastReport = performance.now();
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const [socket, state] of idle) {
        const m = moved(socket);
        if (m !== state.seen) {
          state.seen = m;
          state.since = now;
        } else if (now - state.since >= limits.idleTimeout) {
          idle.delete(socket);
          logger.debug({ remote: peerOf(socket), idleMs: Math.round(now - state.since) }, 'idle connection closed');
          socket.destroy();
        }
      }
      // Refusals are logged once a minute at most: a flood must not become a flood of log lines.
      if (refusedCount > 0 && now - lastReport >= 60_000) {
        logger.warn({ refused: refusedCount, maxConnections: limits.maxConnections, maxConnectionsPerClient: limits.maxConnectionsPerClient }, 'connections refused by the connection caps');
        refusedCount = 0;
        lastReport = now;
      }
    },
    Math.max(50, Math.min(1000, Math.floor((limits.idleTimeout || 60_000) / 4))),
  );
  sweep.unref();
  server.once('close', () => clearInterval(sweep));

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A TLS ClientHello on the plain port (skopeo/podman probe HTTPS first with --tls-verify=false),
    // garbage, or oversized headers: answer 400/431 quietly and keep serving. Not when a response
    // to this request has started (e.g. refused at its head, then its body failed to parse): a
    // second answer would be read as the answer to the client's next request. Node's own default
    // handler makes the same check on the same internal field.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage;
    if (inFlight?.headersSent) {
      socket.destroySoon();
    } else if (socket.writable) {
      const [status, message] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? ['431 Request Header Fields Too Large', `request headers larger than ${config.limits.maxHeaderBytes} bytes`]
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT'
            ? ['408 Request Timeout', 'request headers did not arrive in time']
            : ['400 Bad Request', 'malformed HTTP request'];
      const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message }] });
      socket.end(
        `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    } else {
      socket.destroy();
    }
    logger.debug({ code: err.code, remote: socket.remoteAddress }, 'malformed request rejected');
  });
  if (config.tls) server.on('tlsClientError', (err: Error) => logger.debug({ err: err.message }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.listen.port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const url = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    server,
    url,
    close(graceMs = 25_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
