import { blobDigest, pullBlob, pushBlob } from '../../test/support/blob.js';
import { withCpu } from '../lib/cpu.js';
import type { LoadProcess } from '../lib/load.js';
import { startBenchProxy, type BenchProxy } from '../lib/proxy.js';
import { fmt, median } from '../lib/stats.js';
import { compareHead } from './head.js';

/**
 * The cost of audit events (issue 24): a bench proxy as configured by default (one event per
 * manifest and blob request to the stdout sink, the log stream) against one with `audit: {sinks: []}`
 * (no events). Both are started fresh, in `pairs` pairs of processes: the main bench proxy has a
 * history (gigabytes pulled, thousands of tokens) that moved its pull cost 1.2–4.4 CPU s/GiB on its
 * own, and two identical fresh proxies differ by up to ±7 % in HEAD CPU for the life of the process
 * (2026-12-06), which one pair cannot tell from a 5 % target. Each pair warms up (HEADs, one pull),
 * then manifest HEAD CPU per request and pull CPU per GiB, interleaved `reps` times. The target reads,
 * for HEAD, the median over all pairs of runs of on ÷ off; for pulls, the cheapest pull of each
 * (their spread, 1.0–3.7 CPU s/GiB between pulls of one process, is scheduling on two cores, which only
 * ever adds: the cheapest is the pull's own work, which one event per blob cannot move). Medians shown too.
 */
export interface AuditResults {
  headCpuMs: { on: number; off: number };
  pullCpuPerGiB: { on: number; off: number };
  /** What the target reads: HEAD, the median of on ÷ off over interleaved runs; pull, cheapest on ÷ cheapest off. */
  ratio: { head: number; pull: number };
  size: number;
  pairs: number;
}

const REPO = 'bench/audit';

async function pullHeaders(p: BenchProxy): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await p.registryToken([`repository:${REPO}:pull,push`])}` };
}

/** CPU s per GiB of one pull through `p`. */
async function pullCost(p: BenchProxy, digest: string, size: number): Promise<number> {
  const headers = await pullHeaders(p);
  const { cpu } = await withCpu(p.pid, () => pullBlob(p.url, REPO, digest, size, headers, false));
  return cpu / (size / 2 ** 30);
}

/** One pair of fresh processes: HEAD and pull runs of each, interleaved (which goes first alternates). */
async function onePair(
  upstream: string,
  load: LoadProcess,
  blob: { size: number; digest: string },
  total: number,
  reps: number,
  k: number,
) {
  const { size, digest } = blob;
  const start = (audit: boolean) =>
    audit ? startBenchProxy(upstream) : startBenchProxy(upstream, { config: { audit: { sinks: [] } } });
  // Which process starts first alternates too.
  const [on, off] =
    k % 2 ? (await Promise.all([start(false), start(true)])).reverse() : await Promise.all([start(true), start(false)]);
  try {
    const head = await compareHead(load, { without: off!, with: on! }, total, reps);
    if (k === 0) await pushBlob(on!.url, REPO, size, digest, await pullHeaders(on!), 13);
    // The first pull of a process faults its buffers in: not what a serving proxy pays.
    for (const p of [on!, off!]) await pullCost(p, digest, size);
    const pull = { on: [] as number[], off: [] as number[] };
    for (let i = 0; i < reps; i++) {
      const order = i % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const name of order) pull[name].push(await pullCost(name === 'on' ? on! : off!, digest, size));
    }
    return { head, pull };
  } finally {
    await Promise.all([on!.stop(), off!.stop()]);
  }
}

export async function benchAudit(
  upstream: string,
  load: LoadProcess,
  opts: { total: number; size: number; reps: number; pairs: number },
  log: (m: string) => void,
): Promise<AuditResults> {
  const { total, size, reps, pairs } = opts;
  const heads = { on: [] as number[], off: [] as number[], ratios: [] as number[] };
  const pulls = { on: [] as number[], off: [] as number[] };
  const blob = { size, digest: await blobDigest(size, 13) };
  for (let k = 0; k < pairs; k++) {
    const { head, pull } = await onePair(upstream, load, blob, total, reps, k);
    heads.on.push(head.with.cpuMs);
    heads.off.push(head.without.cpuMs);
    heads.ratios.push(...head.ratios);
    pulls.on.push(...pull.on);
    pulls.off.push(...pull.off);
    log(
      `audit pair ${k + 1}/${pairs}: HEAD on ÷ off ${fmt(head.ratio, 3)}, ` +
        `pull on ${pull.on.map((x) => fmt(x)).join(' ')} vs off ${pull.off.map((x) => fmt(x)).join(' ')} CPU s/GiB`,
    );
  }
  const result: AuditResults = {
    headCpuMs: { on: median(heads.on), off: median(heads.off) },
    pullCpuPerGiB: { on: median(pulls.on), off: median(pulls.off) },
    ratio: { head: median(heads.ratios), pull: Math.min(...pulls.on) / Math.min(...pulls.off) },
    size,
    pairs,
  };
  log(
    `audit events on vs off: HEAD ${fmt(result.headCpuMs.on, 3)} vs ${fmt(result.headCpuMs.off, 3)} ms CPU/req ` +
      `(on ÷ off ${fmt(result.ratio.head, 3)}), pull ${fmt(result.pullCpuPerGiB.on)} vs ` +
      `${fmt(result.pullCpuPerGiB.off)} CPU s/GiB (cheapest on ÷ cheapest off ${fmt(result.ratio.pull, 3)})`,
  );
  return result;
}

/** On ÷ off − 1 of the larger of the two costs (HEAD per request, pull per GiB), as paired ratios. */
export function auditOverhead(r: AuditResults): number {
  return Math.max(r.ratio.head, r.ratio.pull) - 1;
}
