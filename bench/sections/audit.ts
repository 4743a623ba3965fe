import { blobDigest, pullBlob, pushBlob } from '../../test/support/blob.js';
import { withCpu } from '../lib/cpu.js';
import type { LoadProcess } from '../lib/load.js';
import { startBenchProxy, type BenchProxy } from '../lib/proxy.js';
import { fmt, median } from '../lib/stats.js';
import { compareHead } from './head.js';

/**
 * The cost of audit events (issue 24): the bench proxy as configured by default (one event per
 * manifest and blob request to the stdout sink, the log stream) against one with `audit: {sinks: []}`
 * (no events). Manifest HEAD CPU per request and pull CPU per GiB, interleaved `reps` times; medians.
 */
export interface AuditResults {
  headCpuMs: { on: number; off: number };
  pullCpuPerGiB: { on: number; off: number };
  size: number;
}

export async function benchAudit(
  on: BenchProxy,
  upstream: string,
  load: LoadProcess,
  total: number,
  size: number,
  reps: number,
  log: (m: string) => void,
): Promise<AuditResults> {
  const off = await startBenchProxy(upstream, { config: { audit: { sinks: [] } } });
  try {
    const head = await compareHead(load, { without: off, with: on }, total, reps);
    const pull = { on: [] as number[], off: [] as number[] };
    const digest = await blobDigest(size, 13);
    const repo = 'bench/audit';
    const pullHeaders = async (p: BenchProxy) => ({
      authorization: `Bearer ${await p.registryToken([`repository:${repo}:pull,push`])}`,
    });
    await pushBlob(on.url, repo, size, digest, await pullHeaders(on), 13);
    for (let i = 0; i < reps; i++) {
      // Alternate which goes first, so drift on a shared machine falls on both.
      for (const [name, p] of i % 2
        ? ([
            ['off', off],
            ['on', on],
          ] as const)
        : ([
            ['on', on],
            ['off', off],
          ] as const)) {
        const headers = await pullHeaders(p);
        const { cpu } = await withCpu(p.pid, () => pullBlob(p.url, repo, digest, size, headers, false));
        pull[name].push(cpu / (size / 2 ** 30));
      }
    }
    const result: AuditResults = {
      headCpuMs: { on: head.with.cpuMs, off: head.without.cpuMs },
      pullCpuPerGiB: { on: median(pull.on), off: median(pull.off) },
      size,
    };
    log(
      `audit events on vs off: HEAD ${fmt(result.headCpuMs.on, 3)} vs ${fmt(result.headCpuMs.off, 3)} ms CPU/req, ` +
        `pull ${fmt(result.pullCpuPerGiB.on)} vs ${fmt(result.pullCpuPerGiB.off)} CPU s/GiB`,
    );
    return result;
  } finally {
    await off.stop();
  }
}

/** On ÷ off − 1 of the larger of the two costs (HEAD per request, pull per GiB). */
export function auditOverhead(r: AuditResults): number {
  return Math.max(r.headCpuMs.on / r.headCpuMs.off, r.pullCpuPerGiB.on / r.pullCpuPerGiB.off) - 1;
}
