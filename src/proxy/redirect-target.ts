import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { UpstreamConfig } from '../config/types.js';

/**
 * Where a storage redirect may lead (redirect.ts follows it): http(s) only, never a link-local or
 * unspecified address, loopback only when the upstream is on loopback. `followable` decides on the
 * Location (pure); the storage agents check every DNS answer again, so a name cannot point around it.
 */

/** Link-local (cloud metadata at 169.254.169.254, fe80::/10) and unspecified addresses: never followed. */
const ALWAYS_REFUSED = new BlockList();
ALWAYS_REFUSED.addSubnet('169.254.0.0', 16, 'ipv4');
ALWAYS_REFUSED.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_REFUSED.addSubnet('fe80::', 10, 'ipv6');
ALWAYS_REFUSED.addAddress('::', 'ipv6');
ALWAYS_REFUSED.addSubnet('::ffff:a9fe:0', 112, 'ipv6');
ALWAYS_REFUSED.addSubnet('::ffff:0:0', 104, 'ipv6');
/** Loopback: followed only when the upstream itself is on loopback (a local test or sidecar registry). */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:7f00:0', 104, 'ipv6');

function ipType(address: string): 'ipv4' | 'ipv6' | undefined {
  const v = isIP(address);
  return v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : undefined;
}

/** Why a literal address may not be a redirect target, if it may not. Pure. */
function addressProblem(address: string, allowLoopback: boolean): string | undefined {
  const type = ipType(address);
  if (!type) return undefined;
  if (ALWAYS_REFUSED.check(address, type)) return `link-local or unspecified address ${address}`;
  if (!allowLoopback && LOOPBACK.check(address, type))
    return `loopback address ${address} (the upstream is not on loopback)`;
  return undefined;
}

const bareHost = (hostname: string) => hostname.replace(/^\[|\]$/g, '');

/** True when the upstream's host is a loopback address or `localhost`. Pure. */
function upstreamOnLoopback(upstream: Pick<UpstreamConfig, 'url'>): boolean {
  const host = bareHost(new URL(upstream.url).hostname);
  if (host === 'localhost') return true;
  const type = ipType(host);
  return type !== undefined && LOOPBACK.check(host, type);
}

type Decision = { follow: URL } | { pass: true } | { refuse: string };

/**
 * What to do with a redirect `location` answered at `from` (the upstream's URL on the first hop).
 * Pure. Same host as the upstream: passed to the client (rewritten to the proxy, which authorizes
 * it again). Otherwise http(s) only, and never a link-local address (nor loopback unless the
 * upstream is on loopback): a DNS name is checked again once resolved (see `guardedLookup`).
 */
export function followable(
  location: string,
  upstream: Pick<UpstreamConfig, 'url'>,
  from: string = upstream.url,
): Decision {
  let target: URL;
  try {
    target = new URL(location, from);
  } catch {
    return { refuse: 'Location is not a URL' };
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    return { refuse: `scheme ${target.protocol} is not followed` };
  if (from === upstream.url && target.host === new URL(upstream.url).host) return { pass: true };
  if (target.username || target.password) return { refuse: 'Location carries credentials' };
  const problem = addressProblem(bareHost(target.hostname), upstreamOnLoopback(upstream));
  return problem ? { refuse: problem } : { follow: target };
}

/** dns.lookup that fails for the addresses `followable` refuses (a name pointing at 169.254.169.254). */
function guardedLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const bad = addresses.map((a) => addressProblem(a.address, allowLoopback)).find(Boolean);
      if (bad)
        return callback(
          Object.assign(new Error(`redirect target ${hostname} resolves to a ${bad}`), { code: 'EREDIRECTREFUSED' }),
          '',
          0,
        );
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/** The keep-alive agents that reach storage hosts, their DNS answers guarded; `ca`: the upstream's extra CA, trusted here too. */
export function storageAgents(
  upstream: Pick<UpstreamConfig, 'url'>,
  ca?: string,
): { http: HttpAgent; https: HttpsAgent } {
  const agentOptions = {
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 16,
    lookup: guardedLookup(upstreamOnLoopback(upstream)),
  };
  return {
    http: new HttpAgent(agentOptions),
    https: new HttpsAgent({ ...agentOptions, ...(ca ? { ca: [...rootCertificates, ca] } : {}) }),
  };
}
