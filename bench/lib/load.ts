import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
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
export interface LoadOptions {
  url: string;
  method: 'HEAD' | 'GET';
  path: string;
  /** Fixed headers, or a list used in turn, request n taking entry n mod length (e.g. a different credential each time). */
  headers?: Record<string, string> | Record<string, string>[];
  concurrency: number;
  total: number;
  maxMs?: number;
  expectStatus?: number;
}

export async function measureLatency(opts: LoadOptions): Promise<LatencyResult> {
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
      const headers = Array.isArray(opts.headers) ? opts.headers[n % opts.headers.length] : opts.headers;
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

/** A load generator in its own process (bench/tools/load-gen.ts), so that its CPU is neither the benchmark runner's nor hidden: it reports its own. */
export interface LoadProcess {
  run(opts: LoadOptions): Promise<LatencyResult & { clientCpu: number }>;
  stop(): void;
}

export function startLoadProcess(): LoadProcess {
  // cwd: the repository, where `--import tsx` resolves
  const child = fork(fileURLToPath(new URL('../tools/load-gen.ts', import.meta.url)), [], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  let busy = false;
  return {
    run(opts) {
      if (busy) throw new Error('one load at a time');
      busy = true;
      return new Promise((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
        child.once('exit', onExit);
        child.once('message', (m: LatencyResult & { clientCpu: number }) => {
          busy = false;
          child.off('exit', onExit);
          resolve(m);
        });
        child.send(opts);
      });
    },
    stop: () => child.kill(),
  };
}
