import type { LoadProcess } from '../lib/load.js';
import { startBenchProxy, type BenchProxy } from '../lib/proxy.js';
import { fmt } from '../lib/stats.js';
import { compareHead, type Measured } from './head.js';

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
    const { without, with: withRule } = await compareHead(load, { without: base, with: ruled }, total, reps);
    const result = { without, with: withRule, extraCpuMs: withRule.cpuMs - without.cpuMs };
    log(
      `HEAD x16 with a request-time rule: ${fmt(result.with.cpuMs, 3)} ms CPU/req vs ${fmt(result.without.cpuMs, 3)} without ` +
        `(+${fmt(result.extraCpuMs, 3)} ms), p50 ${fmt(result.with.lat.p50)} vs ${fmt(result.without.lat.p50)} ms`,
    );
    return result;
  } finally {
    await ruled.stop();
  }
}
