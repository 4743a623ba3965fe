import { Agent, request } from 'node:http';
import { percentile } from './stats.js';

export interface LatencyResult {
  concurrency: number;
  requests: number;
  errors: number;
  p50: number;
  p99: number;
  rps: number;
}

/**
 * Sends `total` requests (bounded also by `maxMs`) with `concurrency` workers over keep-alive
 * connections, recording each request's latency in milliseconds.
 *
 * node:http with a keep-alive agent rather than undici: undici deliberately closes the connection
 * after every HEAD response, which would turn a HEAD benchmark into a connection-setup benchmark;
 * real registry clients (containerd, skopeo: Go's net/http) keep their connections.
 */
export async function measureLatency(opts: {
  url: string;
  method: 'HEAD' | 'GET';
  path: string;
  /** Fixed headers, or headers per request number (e.g. a different credential each time). */
  headers?: Record<string, string> | ((n: number) => Record<string, string>);
  concurrency: number;
  total: number;
  maxMs?: number;
  expectStatus?: number;
}): Promise<LatencyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, maxFreeSockets: opts.concurrency });
  const samples: number[] = [];
  let errors = 0;
  let sent = 0;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const url = `${opts.url}${opts.path}`;
  const once = (headers: Record<string, string> | undefined): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request(url, { method: opts.method, headers, agent }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.end();
    });
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (sent < opts.total && Date.now() < deadline) {
      const n = sent++;
      const headers = typeof opts.headers === 'function' ? opts.headers(n) : opts.headers;
      const t0 = performance.now();
      try {
        const status = await once(headers);
        if (opts.expectStatus !== undefined && status !== opts.expectStatus) errors++;
        else samples.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return {
    concurrency: opts.concurrency,
    requests: samples.length,
    errors,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    rps: samples.length / elapsed,
  };
}
