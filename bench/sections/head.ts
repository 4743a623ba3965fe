import { MANIFEST_TYPE } from '../../test/support/seed.js';
import { withCpu } from '../lib/cpu.js';
import type { LatencyResult, LoadProcess } from '../lib/load.js';
import { perMode, type Mode, type Target } from '../lib/modes.js';
import { fmt, pairedRatio } from '../lib/stats.js';

/** A load run with the serving tree's CPU per request and the load generator's own. */
export interface Measured {
  lat: LatencyResult;
  /** CPU milliseconds of the serving process tree per answered request. */
  cpuMs: number;
  /** CPU milliseconds of the load generator per answered request. */
  clientCpuMs: number;
}

export const CLIENTS = [1, 16, 128] as const;

export type HeadResults = Record<(typeof CLIENTS)[number], Record<Mode, Measured | undefined>>;

/** Runs `opts` from the load process while reading the CPU of the tree under `pid`. */
export async function measured(
  load: LoadProcess,
  pid: number,
  opts: Parameters<LoadProcess['run']>[0],
): Promise<Measured> {
  const { value, cpu } = await withCpu(pid, () => load.run(opts));
  const n = value.requests + value.errors;
  return { lat: value, cpuMs: (cpu * 1000) / n, clientCpuMs: (value.clientCpu * 1000) / n };
}

/**
 * Manifest HEAD against every target at 1, 16 and 128 clients over keep-alive connections, after a
 * warm-up (connections, JIT, caches). `total` requests at 16 and 128 clients, a quarter of that at 1.
 */
export async function benchHead(
  targets: Target[],
  load: LoadProcess,
  total: number,
  log: (m: string) => void,
): Promise<HeadResults> {
  const results = {} as HeadResults;
  for (const c of CLIENTS) {
    results[c] = perMode<Measured | undefined>(() => undefined);
    for (const t of targets) {
      const opts = {
        url: t.url,
        method: 'HEAD' as const,
        path: '/v2/bench/app/manifests/latest',
        headers: { accept: MANIFEST_TYPE, ...(await t.auth(['repository:bench/app:pull'])) },
        concurrency: c,
        expectStatus: 200,
        maxMs: 60_000,
      };
      await load.run({ ...opts, total: Math.min(500, total) });
      const m = await measured(load, t.pid, { ...opts, total: c === 1 ? total / 4 : total });
      results[c][t.mode] = m;
      log(
        `HEAD x${c} ${t.mode}: p50 ${fmt(m.lat.p50)} ms, p99 ${fmt(m.lat.p99)} ms, ${fmt(m.lat.rps, 0)} req/s, ` +
          `${fmt(m.cpuMs, 3)} ms CPU/req (client ${fmt(m.clientCpuMs, 3)}), ${m.lat.errors} errors`,
      );
    }
  }
  return results;
}

/** Manifest HEAD at 16 clients through a bench proxy, with a token that may pull bench/app. */
async function proxyHeadOptions(
  p: { url: string; registryToken(scopes: string[]): Promise<string> },
  reference = 'latest',
) {
  return {
    url: p.url,
    method: 'HEAD' as const,
    path: `/v2/bench/app/manifests/${reference}`,
    headers: { accept: MANIFEST_TYPE, authorization: `Bearer ${await p.registryToken(['repository:bench/app:pull'])}` },
    concurrency: 16,
    expectStatus: 200,
    maxMs: 60_000,
  };
}

/** The run of median proxy CPU per request (its latency with it). */
function medianByCpu(xs: Measured[]): Measured {
  return [...xs].sort((a, b) => a.cpuMs - b.cpuMs)[Math.floor(xs.length / 2)]!;
}

/**
 * Manifest HEAD through two bench proxies, `without` and `with` a feature, after a warm-up of each;
 * `reps` interleaved runs of `total`, alternating which goes first so drift on a shared machine falls
 * on both. The median run of each, and `ratio`: the median of each rep's with ÷ without CPU, which a
 * drift slower than one pair of runs cancels out of.
 */
export async function compareHead(
  load: LoadProcess,
  proxies: Record<'without' | 'with', { url: string; pid: number; registryToken(s: string[]): Promise<string> }>,
  total: number,
  reps: number,
  reference = 'latest',
): Promise<Record<'without' | 'with', Measured> & { ratio: number; ratios: number[] }> {
  const runs = { without: [] as Measured[], with: [] as Measured[] };
  const opts = async (name: 'without' | 'with') => proxyHeadOptions(proxies[name], reference);
  for (const name of ['without', 'with'] as const) await load.run({ ...(await opts(name)), total: 500 });
  for (let i = 0; i < reps; i++)
    for (const name of i % 2 ? (['with', 'without'] as const) : (['without', 'with'] as const))
      runs[name].push(await measured(load, proxies[name].pid, { ...(await opts(name)), total }));
  return {
    without: medianByCpu(runs.without),
    with: medianByCpu(runs.with),
    ratio: pairedRatio(
      runs.with.map((m) => m.cpuMs),
      runs.without.map((m) => m.cpuMs),
    ),
    ratios: runs.with.map((m, i) => m.cpuMs / runs.without[i]!.cpuMs),
  };
}
