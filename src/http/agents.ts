import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Agent } from 'undici';
import { outboundAgent } from './outbound.js';

/**
 * The one place the connection pools towards an upstream are made: its extra CA file read once,
 * for the pool that relays `/v2/` traffic and for the bounded pool the proxy's own calls use
 * (credentials, token service, readiness, guards).
 */
export interface UpstreamAgents {
  /** The extra trusted CA (PEM), if configured. */
  ca?: string;
  /** Keep-alive pool for relayed traffic. No socket timeouts: the forwarder's watchdog bounds every exchange. */
  forward: HttpAgent;
  /** Pool for the proxy's own calls (http/outbound.ts): connect, headers and body bounded by the upstream's timeout. */
  outbound: Agent;
  close(): Promise<void>;
}

export function upstreamAgents(upstream: { url: string; caFile?: string; timeout: number }): UpstreamAgents {
  const ca = upstream.caFile ? readFileSync(upstream.caFile, 'utf8') : undefined;
  const options = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64 };
  const https = upstream.url.startsWith('https:');
  const forward = https ? new HttpsAgent({ ...options, ...(ca ? { ca } : {}) }) : new HttpAgent(options);
  const outbound = outboundAgent({ ca, timeoutMs: upstream.timeout });
  return {
    ...(ca ? { ca } : {}),
    forward,
    outbound,
    async close() {
      forward.destroy();
      await outbound.close();
    },
  };
}
