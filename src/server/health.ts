import { Agent, request } from 'undici';
import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../config/types.js';

/**
 * Remembers whether the upstream answered `GET /v2/` recently (any HTTP status counts: a 401 from
 * a token-auth upstream still proves it is up). Probed lazily by /readyz, at most every few seconds.
 */
export function createUpstreamProbe(upstream: UpstreamConfig | undefined, intervalMs = 5000) {
  let lastOk = 0;
  let lastTry = 0;
  let lastError = 'not probed yet';
  const dispatcher = upstream
    ? new Agent({ connect: { timeout: 3000, ...(upstream.caFile ? { ca: readFileSync(upstream.caFile, 'utf8') } : {}) }, headersTimeout: 3000, bodyTimeout: 3000 })
    : undefined;
  async function probe(): Promise<void> {
    if (!upstream || !dispatcher) return;
    lastTry = Date.now();
    try {
      const res = await request(`${upstream.url}/v2/`, { method: 'GET', dispatcher, signal: AbortSignal.timeout(3000) });
      await res.body.dump();
      lastOk = Date.now();
      lastError = '';
    } catch (err) {
      lastError = (err as Error).message;
    }
  }
  return {
    async ready(): Promise<{ ok: boolean; reason?: string }> {
      if (!upstream) return { ok: true };
      if (Date.now() - lastTry > intervalMs) await probe();
      return Date.now() - lastOk <= intervalMs * 3 ? { ok: true } : { ok: false, reason: `upstream ${upstream.url} did not answer: ${lastError}` };
    },
    close: () => dispatcher?.close(),
  };
}
