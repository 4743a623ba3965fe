import type { Server } from 'node:http';
import { isIP, type BlockList, type Socket } from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { parseTrustedProxies } from '../config/net.js';

/**
 * Connection caps and the idle sweep of the listener (`listen.ts`). The total cap guards against
 * running out of file descriptors (Node closes connections beyond it as they are accepted, spending
 * nothing on them); the per-peer cap keeps one address from taking all of them. Peers in
 * trustedProxies carry many clients and are exempt.
 */

/** How long a connection refused for its peer's connection cap may take to send the request we answer 503 to. */
const REFUSED_GRACE_MS = 2_000;
/** Refusals are logged once a minute at most: a flood must not become a flood of log lines. */
const REFUSAL_REPORT_MS = 60_000;

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

/** How often the idle sweep runs: a quarter of the idle timeout, within 50 ms..1 s. Pure. */
export function sweepPeriodMs(idleTimeout: number): number {
  return Math.max(50, Math.min(1000, Math.floor((idleTimeout || 60_000) / 4)));
}

/** The TCP peer as http/client-ip.ts reports it (IPv4-mapped IPv6 as plain IPv4). */
export function peerOf(socket: Socket): string {
  const ip = socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function isTrusted(list: BlockList | undefined, ip: string): boolean {
  const family = isIP(ip);
  return list !== undefined && family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function count(m: Map<string, number>, peer: string, d: number): void {
  const n = (m.get(peer) ?? 0) + d;
  if (n > 0) m.set(peer, n);
  else m.delete(peer);
}

/**
 * Applies the caps to `server`'s connections and closes idle ones. A connection refused for its
 * peer's cap is added to `refused`, so that the request listener answers its request with a 503.
 */
export function guardConnections(server: Server, config: Config, logger: Logger, refused: WeakSet<Socket>): void {
  const guard = new ConnectionGuard(config, logger, refused);
  if (config.limits.maxConnections > 0) server.maxConnections = config.limits.maxConnections;
  server.on('drop', () => guard.refusedCount++);
  server.prependListener('connection', (socket: Socket) => guard.connected(socket));
  const sweep = setInterval(() => guard.sweep(), sweepPeriodMs(config.limits.idleTimeout));
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
}

class ConnectionGuard {
  private readonly limits: Config['limits'];
  private readonly trusted: BlockList | undefined;
  private readonly perPeer = new Map<string, number>();
  private readonly refusingPerPeer = new Map<string, number>();
  /**
   * Idle sweep: a connection whose byte counters have not moved for idleTimeout is closed. Read
   * from the sockets' own counters once a period: no timer re-armed per chunk (see
   * proxy/idle-watchdog.ts for what that costs), and a slow transfer that moves at all is never cut.
   */
  private readonly idle = new Map<Socket, { seen: number; since: number }>();
  /** Connections refused since the last report. */
  refusedCount = 0;
  private lastReport = performance.now();

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly refused: WeakSet<Socket>,
  ) {
    this.limits = config.limits;
    this.trusted = config.trustedProxies.length ? parseTrustedProxies(config.trustedProxies) : undefined;
  }

  connected(socket: Socket): void {
    const peer = peerOf(socket);
    const open = this.perPeer.get(peer) ?? 0;
    const verdict = connectionVerdict(open, this.refusingPerPeer.get(peer) ?? 0, this.limits.maxConnectionsPerClient, isTrusted(this.trusted, peer));
    if (verdict !== 'admit') {
      this.refusedCount++;
      this.logger.debug({ remote: peer, open, limit: this.limits.maxConnectionsPerClient, verdict }, 'connection refused: per-client connection cap');
      // Over TLS there is no cheap way to answer before a handshake: close. In plain HTTP the
      // request gets a 503 (see listen.ts) if its head arrives promptly; the socket goes either way.
      if (verdict === 'drop' || this.config.tls) return void socket.destroy();
      this.refused.add(socket);
      count(this.refusingPerPeer, peer, 1);
      socket.once('close', () => count(this.refusingPerPeer, peer, -1));
      setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
      return;
    }
    count(this.perPeer, peer, 1);
    if (this.limits.idleTimeout > 0) this.idle.set(socket, { seen: 0, since: performance.now() });
    socket.once('close', () => {
      this.idle.delete(socket);
      count(this.perPeer, peer, -1);
    });
  }

  sweep(): void {
    const now = performance.now();
    for (const [socket, state] of this.idle) {
      const moved = socket.bytesRead + (socket.bytesWritten ?? 0);
      if (moved !== state.seen) {
        state.seen = moved;
        state.since = now;
      } else if (now - state.since >= this.limits.idleTimeout) {
        this.idle.delete(socket);
        this.logger.debug({ remote: peerOf(socket), idleMs: Math.round(now - state.since) }, 'idle connection closed');
        socket.destroy();
      }
    }
    if (this.refusedCount > 0 && now - this.lastReport >= REFUSAL_REPORT_MS) {
      this.logger.warn(
        { refused: this.refusedCount, maxConnections: this.limits.maxConnections, maxConnectionsPerClient: this.limits.maxConnectionsPerClient },
        'connections refused by the connection caps',
      );
      this.refusedCount = 0;
      this.lastReport = now;
    }
  }
}
