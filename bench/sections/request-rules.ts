import type { LoadProcess } from '../lib/load.js';
import { startBenchProxy, type BenchProxy } from '../lib/proxy.js';
import { fmt } from '../lib/stats.js';
import { measured, proxyHeadOptions, type Measured } from './head.js';

/**
 * The cost of a request-time rule on a pull (issue 21): manifest HEAD at 16 clients through the bench
 * proxy and through a second one whose policy adds a rule evaluated on every pull that reads no
 * upstream field (so no HEAD upstream: the CEL, the facts and the guard stage only). Interleaved,
 * `reps` times each; the medians are reported.
 */
export interface RequestRulesResults {
  without: Measured;
  with: Measured;
  /** Proxy CPU ms per HEAD added by the rule (median with − median without). */
  extraCpuMs: number;
}

const RULE = `  - name: bench-production-pulls-by-digest
    effect: deny
    phase: request
    actions: [pull]
    when: request.repository.startsWith("production/") && has(request.tag)
`;

const median = (xs: Measured[]): Measured => [...xs].sort((a, b) => a.cpuMs - b.cpuMs)[Math.floor(xs.length / 2)]!;

export async function benchRequestRules(
  base: BenchProxy,
  upstream: string,
  load: LoadProcess,
  total: number,
  reps: number,
  log: (m: string) => void,
): Promise<RequestRulesResults> {
  const ruled = await startBenchProxy(upstream, { extraRules: RULE });
  try {
    const optsFor = (p: BenchProxy) => proxyHeadOptions(p);
    const runs = { without: [] as Measured[], with: [] as Measured[] };
    for (const p of [base, ruled]) await load.run({ ...(await optsFor(p)), total: 500 }); // warm-up
    for (let i = 0; i < reps; i++) {
      for (const [name, p] of [
        ['without', base],
        ['with', ruled],
      ] as const)
        runs[name].push(await measured(load, p.pid, { ...(await optsFor(p)), total }));
    }
    const result = { without: median(runs.without), with: median(runs.with), extraCpuMs: 0 };
    result.extraCpuMs = result.with.cpuMs - result.without.cpuMs;
    log(
      `HEAD x16 with a request-time rule: ${fmt(result.with.cpuMs, 3)} ms CPU/req vs ${fmt(result.without.cpuMs, 3)} without ` +
        `(+${fmt(result.extraCpuMs, 3)} ms), p50 ${fmt(result.with.lat.p50)} vs ${fmt(result.without.lat.p50)} ms`,
    );
    return result;
  } finally {
    await ruled.stop();
  }
}
