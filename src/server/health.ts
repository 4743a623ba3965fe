import { Agent, request } from 'undici';
import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../config/types.js';
import type { Logger } from '../log.js';

/**
 * What /readyz tells its (anonymous) caller when the upstream probe fails. Only which check failed:
 * the upstream's address and the socket error describe the inside of the deployment, so they go to
 * the log (warn, once per change) and nowhere else.
 */
export const UPSTREAM_UNREACHABLE = 'upstream unreachable';

/**
 * Remembers whether the upstream answered `GET /v2/` recently (any HTTP status counts: a 401 from
 * a token-auth upstream still proves it is up). Probed lazily by /readyz, at most every few seconds.
 */
export function createUpstreamProbe(upstream: UpstreamConfig | undefined, logger?: Logger, intervalMs = 5000) {
  let lastOk = 0;
  let lastTry = 0;
  let lastError = 'not probed yet';
  let loggedError: string | undefined;
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
      if (loggedError !== undefined) logger?.info({ upstream: upstream.url }, 'readiness: upstream answers again');
      loggedError = undefined;
    } catch (err) {
      lastError = (err as Error).message;
      // The details are for operators: logged when the failure starts or changes, not on every probe.
      if (lastError !== loggedError) logger?.warn({ upstream: upstream.url, err: lastError }, `readiness: ${UPSTREAM_UNREACHABLE}`);
      loggedError = lastError;
    }
  }
  return {
    async ready(): Promise<{ ok: boolean; reason?: string }> {
      if (!upstream) return { ok: true };
      if (Date.now() - lastTry > intervalMs) await probe();
      return Date.now() - lastOk <= intervalMs * 3 ? { ok: true } : { ok: false, reason: UPSTREAM_UNREACHABLE };
    },
    close: () => dispatcher?.close(),
  };
}
