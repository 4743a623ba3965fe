import { BlockList, isIP } from 'node:net';
import { z } from 'zod';

/** Network addresses in the config: the listener, and the proxies whose X-Forwarded-For is believed. */

export interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port`, `[v6]:port` or `:port` (all addresses). */
export const listenAddress = z.string().transform((s, ctx): ListenAddress => {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    ctx.issues.push({ code: 'custom', message: m ? `port ${port} out of range` : `"${s}" is not host:port`, input: s });
    return z.NEVER;
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
});

/** A host as it appears in a URL: IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** Loopback only: 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address into BlockList entries; throws on garbage. */
export function parseTrustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, prefix] = entry.split('/');
    const family = isIP(addr ?? '');
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(addr!, type);
    else {
      const bits = Number(prefix);
      if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128))
        throw new Error(`"${entry}" has an invalid prefix length`);
      list.addSubnet(addr!, bits, type);
    }
  }
  return list;
}

/** Why these trusted-proxy entries are unusable, or undefined. */
export function trustedProxiesProblem(entries: readonly string[]): string | undefined {
  try {
    parseTrustedProxies(entries);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
