import { MANIFEST_TYPE } from '../../test/support/seed.js';
import { processTree } from '../lib/cpu.js';
import type { LoadProcess } from '../lib/load.js';
import { startInstantUpstream } from '../lib/nginx.js';
import { startBenchProxy, WorkersUnsupported, type BenchProxy } from '../lib/proxy.js';
import { fmt, median } from '../lib/stats.js';
import { measured, type Measured } from './head.js';

export const WORKERS_CLIENTS = 128;

type Runs = Measured[];

export interface WorkersResults {
  /** The instant upstream reached directly: the ceiling of this load generator on this machine. */
  upstream: Runs;
  w1: Runs;
  /** Undefined when the build refuses the `workers` key. */
  w2?: Runs;
  note?: string;
}

/** Whether the process has `n` children within a few seconds (node:cluster forks after start-up). */
async function forked(pid: number, n: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (processTree(pid).length > n) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * HEAD throughput at 128 clients against an upstream that answers instantly (nginx `return 200`),
 * so the proxy is the bottleneck: `workers: 1` and `workers: 2`, interleaved `reps` times, with
 * the instant upstream reached directly as the ceiling of the load generator. The load generator is
 * one Node process on the same cores: it takes CPU from the proxy, more so from two workers.
 */
export async function benchWorkers(
  load: LoadProcess,
  total: number,
  reps: number,
  log: (m: string) => void,
): Promise<WorkersResults> {
  const upstream = await startInstantUpstream();
  const proxies: BenchProxy[] = [];
  try {
    let w2: BenchProxy | undefined;
    let note: string | undefined;
    try {
      w2 = await startBenchProxy(upstream.url, { workers: 2 });
      proxies.push(w2);
      if (!(await forked(w2.pid, 2))) {
        note = 'workers: 2 accepted, but no worker processes appeared';
        w2 = undefined;
      }
    } catch (err) {
      if (!(err instanceof WorkersUnsupported)) throw err;
      note = 'workers not supported by this build';
    }
    if (note) log(`${note}: measuring the single-process proxy only`);
    // `workers: 1` is the default: stated only when the build knows the key
    const w1 = await startBenchProxy(upstream.url, w2 ? { workers: 1 } : {});
    proxies.push(w1);
    const path = '/v2/bench/app/manifests/latest';
    const targets: [keyof WorkersResults, string, number, Record<string, string>][] = [
      ['upstream', upstream.url, upstream.pid, {}],
      ['w1', w1.url, w1.pid, { authorization: `Bearer ${await w1.registryToken(['repository:bench/app:pull'])}` }],
    ];
    if (w2)
      targets.push([
        'w2',
        w2.url,
        w2.pid,
        { authorization: `Bearer ${await w2.registryToken(['repository:bench/app:pull'])}` },
      ]);
    const results: WorkersResults = { upstream: [], w1: [], ...(w2 ? { w2: [] } : {}), ...(note ? { note } : {}) };
    for (let rep = 0; rep < reps; rep++) {
      for (const [name, url, pid, auth] of rep % 2 ? [...targets].reverse() : targets) {
        const opts = {
          url,
          method: 'HEAD' as const,
          path,
          headers: { accept: MANIFEST_TYPE, ...auth },
          concurrency: WORKERS_CLIENTS,
          expectStatus: 200,
          maxMs: 60_000,
        };
        if (rep === 0) await load.run({ ...opts, total: Math.min(2000, total) }); // warm-up: every worker's JIT and connections
        const m = await measured(load, pid, { ...opts, total });
        (results[name] as Runs).push(m);
        log(
          `instant upstream x${WORKERS_CLIENTS} ${name}: ${fmt(m.lat.rps, 0)} req/s, ${fmt(m.cpuMs, 3)} ms CPU/req, ${m.lat.errors} errors`,
        );
      }
    }
    return results;
  } finally {
    for (const p of proxies) await p.stop();
    await upstream.stop();
  }
}

/** Median requests/s of a set of runs. */
export function rate(runs: Runs | undefined): number {
  return runs ? median(runs.map((m) => m.lat.rps)) : NaN;
}

/** Median serving CPU ms per request of a set of runs. */
export function cpuMs(runs: Runs | undefined): number {
  return runs ? median(runs.map((m) => m.cpuMs)) : NaN;
}
