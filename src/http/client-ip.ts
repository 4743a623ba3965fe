import { isIP, type BlockList } from 'node:net';
import type { IncomingMessage } from 'node:http';
// The syntax is the config's to check (config/net.ts); parsed once more here into the BlockList used per request.
import { parseTrustedProxies } from '../config/net.js';
import { requestState } from './request-state.js';

function normalize(ip: string): string {
  // IPv4-mapped IPv6 (::ffff:1.2.3.4), as dual-stack sockets report IPv4 peers
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function trusted(list: BlockList, ip: string): boolean {
  const family = isIP(ip);
  return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client's address: the TCP peer, unless the peer is a trusted proxy (an ingress, a load
 * balancer); then the right-most X-Forwarded-For entry that is not itself a trusted proxy. Entries
 * left of the first untrusted one are the client's own claims and are never believed.
 */
export function clientIPResolver(trustedProxies: readonly string[]): (req: IncomingMessage) => string {
  const list = trustedProxies.length ? parseTrustedProxies(trustedProxies) : undefined;
  return (req) => {
    const state = requestState(req);
    if (state.clientIP !== undefined) return state.clientIP;
    let ip = normalize(req.socket.remoteAddress ?? '');
    if (list && trusted(list, ip)) {
      const header = req.headersDistinct?.['x-forwarded-for'] ?? [];
      const hops = (header as string[])
        .join(',')
        .split(',')
        .map((h: string) => normalize(h.trim()))
        .filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]!;
        if (isIP(hop) === 0) break; // garbage: stop at the last address we could trust
        ip = hop;
        if (!trusted(list, hop)) break;
      }
    }
    state.clientIP = ip;
    return ip;
  };
}

/** The address the app resolved for this request (see clientIPResolver), or the TCP peer. */
export function clientIPOf(req: IncomingMessage): string {
  return requestState(req).clientIP ?? normalize(req.socket.remoteAddress ?? '');
}
