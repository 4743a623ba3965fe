import type { Server } from 'node:http';
import { isIP, type BlockList, type Socket } from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { parseTrustedProxies } from '../config/net.js';
import { connectionCap, OVER_CAP_RESERVE, readOpenFilesLimit } from './connection-cap.js';

/**
 * Connection caps and the idle sweep of the listener (`listen.ts`). The total cap guards against
 * running out of file descriptors: it is the configured one, lowered to what this process's
 * open-files limit allows (each worker has descriptors of its own); past it, a few connections
 * more are let in only to answer probes (/healthz, /readyz) and a 503, the rest are dropped. The
 * per-peer cap keeps one address from taking all of them. Peers in trustedProxies carry many
 * clients and are exempt from the per-peer cap.
 */

/** Why a connection was let in only to be refused: its peer's cap, or the total one. */
export type Refusal = 'peer' | 'total';

/** How long a connection refused for its peer's connection cap may take to send the request we answer 503 to. */
const REFUSED_GRACE_MS = 2_000;
/** Refusals are logged once a minute at most: a flood must not become a flood of log lines. */
const REFUSAL_REPORT_MS = 60_000;

/**
 * What to do with a new connection when `open` are admitted and `refusing` refused ones still
 * open, for a peer's cap or the total one. Pure. Under the cap (0: none; trusted proxies exempt):
 * admit. Over it: answer 503 (or a probe) — but only `reserve` refusals at a time (a peer's: as
 * many as its cap), so that a flood of connections cannot hold descriptors through its refusals
 * either: beyond that they are dropped at once.
 */
export function connectionVerdict(
  open: number,
  refusing: number,
  limit: number,
  trustedPeer: boolean,
  reserve = limit,
): 'admit' | 'refuse' | 'drop' {
  if (limit === 0 || trustedPeer || open < limit) return 'admit';
  return refusing < reserve ? 'refuse' : 'drop';
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
 * Applies the caps to `server`'s connections and closes idle ones. A connection refused for a cap
 * is added to `refused`, so that the request listener answers its request with a 503 (a probe is
 * answered). Logs the total cap, and warns when the open-files limit lowered the configured one.
 */
export function guardConnections(
  server: Server,
  config: Config,
  logger: Logger,
  refused: WeakMap<Socket, Refusal>,
): void {
  const configured = config.limits.maxConnections;
  const openFiles = readOpenFilesLimit();
  const { cap, lowered, needed } = connectionCap(configured, openFiles);
  if (lowered && configured !== 0) {
    logger.warn(
      { maxConnections: cap, configured, openFilesLimit: openFiles },
      `limits.maxConnections (${configured}) is more than the open-files limit (${openFiles}) allows: capped at ${cap}; raise the limit (ulimit -n, LimitNOFILE=) to ${needed} to keep ${configured}`,
    );
  } else {
    logger.info({ maxConnections: cap, configured, openFilesLimit: openFiles ?? 'unknown' }, 'connection cap');
  }
  const guard = new ConnectionGuard(config, cap, logger, refused);
  // A backstop: Node drops anything past the cap and its reserve at accept (ConnectionGuard counts the same).
  if (cap > 0) server.maxConnections = cap + OVER_CAP_RESERVE;
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
  /** Connections open that count against the total cap (admitted and refused for their peer's cap). */
  private open = 0;
  /** Connections let in past the total cap, open now. */
  private overCap = 0;
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
    private readonly cap: number,
    private readonly logger: Logger,
    private readonly refused: WeakMap<Socket, Refusal>,
  ) {
    this.limits = config.limits;
    this.trusted = config.trustedProxies.length ? parseTrustedProxies(config.trustedProxies) : undefined;
  }

  connected(socket: Socket): void {
    const peer = peerOf(socket);
    const total = connectionVerdict(this.open, this.overCap, this.cap, false, OVER_CAP_RESERVE);
    if (total !== 'admit') {
      this.logger.debug(
        { remote: peer, open: this.open, limit: this.cap, verdict: total },
        'connection refused: total connection cap',
      );
      this.refuse(
        socket,
        total,
        'total',
        () => this.overCap++,
        () => this.overCap--,
      );
      return;
    }
    const open = this.perPeer.get(peer) ?? 0;
    const verdict = connectionVerdict(
      open,
      this.refusingPerPeer.get(peer) ?? 0,
      this.limits.maxConnectionsPerClient,
      isTrusted(this.trusted, peer),
    );
    this.open++;
    socket.once('close', () => this.open--);
    if (verdict !== 'admit') {
      this.logger.debug(
        { remote: peer, open, limit: this.limits.maxConnectionsPerClient, verdict },
        'connection refused: per-client connection cap',
      );
      this.refuse(
        socket,
        verdict,
        'peer',
        () => count(this.refusingPerPeer, peer, 1),
        () => count(this.refusingPerPeer, peer, -1),
      );
      return;
    }
    count(this.perPeer, peer, 1);
    if (this.limits.idleTimeout > 0) this.idle.set(socket, { seen: 0, since: performance.now() });
    socket.once('close', () => {
      this.idle.delete(socket);
      count(this.perPeer, peer, -1);
    });
  }

  /**
   * Over TLS there is no cheap way to answer before a handshake: close. In plain HTTP the request
   * gets a 503, or a probe its answer (see listen.ts), if its head arrives promptly; the socket goes either way.
   */
  private refuse(
    socket: Socket,
    verdict: 'refuse' | 'drop',
    why: Refusal,
    held: () => void,
    released: () => void,
  ): void {
    this.refusedCount++;
    if (verdict === 'drop' || this.config.tls) return void socket.destroy();
    this.refused.set(socket, why);
    held();
    socket.once('close', released);
    setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
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
        {
          refused: this.refusedCount,
          maxConnections: this.cap,
          maxConnectionsPerClient: this.limits.maxConnectionsPerClient,
        },
        'connections refused by the connection caps',
      );
      this.refusedCount = 0;
      this.lastReport = now;
    }
  }
}
