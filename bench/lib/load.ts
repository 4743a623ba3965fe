import { Pool } from 'undici';
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
 */
export async function measureLatency(opts: {
  url: string;
  method: 'HEAD' | 'GET';
  path: string;
  headers?: Record<string, string>;
  concurrency: number;
  total: number;
  maxMs?: number;
  expectStatus?: number;
}): Promise<LatencyResult> {
  const origin = new URL(opts.url).origin;
  const pool = new Pool(origin, { connections: opts.concurrency, pipelining: 1 });
  const samples: number[] = [];
  let errors = 0;
  let sent = 0;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (sent < opts.total && Date.now() < deadline) {
      sent++;
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: opts.method, path: opts.path, headers: opts.headers });
        await res.body.dump();
        if (opts.expectStatus !== undefined && res.statusCode !== opts.expectStatus) errors++;
        else samples.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  return {
    concurrency: opts.concurrency,
    requests: samples.length,
    errors,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    rps: samples.length / elapsed,
  };
}
