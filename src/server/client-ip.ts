import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address into BlockList entries; throws on garbage. */
export function parseTrustedProxies(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, prefix] = entry.split('/');
    const family = isIP(addr ?? '');
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(addr!, type);
    else {
      const bits = Number(prefix);
      if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has an invalid prefix length`);
      list.addSubnet(addr!, bits, type);
    }
  }
  return list;
}

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
export function clientIPResolver(trustedProxies: string[]): (req: IncomingMessage) => string {
  const list = trustedProxies.length ? parseTrustedProxies(trustedProxies) : undefined;
  return (req) => {
    const cached = (req as IncomingMessage & { clientIP?: string }).clientIP;
    if (cached !== undefined) return cached;
    let ip = normalize(req.socket.remoteAddress ?? '');
    if (list && trusted(list, ip)) {
      const header = req.headersDistinct?.['x-forwarded-for'] ?? [];
      const hops = (header as string[]).join(',').split(',').map((h: string) => normalize(h.trim())).filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]!;
        if (isIP(hop) === 0) break; // garbage: stop at the last address we could trust
        ip = hop;
        if (!trusted(list, hop)) break;
      }
    }
    (req as IncomingMessage & { clientIP?: string }).clientIP = ip;
    return ip;
  };
}

/** The address the app resolved for this request (see clientIPResolver), or the TCP peer. */
export function clientIPOf(req: IncomingMessage): string {
  return (req as IncomingMessage & { clientIP?: string }).clientIP ?? normalize(req.socket.remoteAddress ?? '');
}
