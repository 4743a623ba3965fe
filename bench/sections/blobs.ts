import { blobDigest, pullBlob, pushBlob } from '../../test/support/blob.js';
import { peakRss, withCpu } from '../lib/cpu.js';
import { MODES, perMode, type Mode, type Target } from '../lib/modes.js';
import { fmt, median } from '../lib/stats.js';

/** One transfer: wall seconds, and CPU seconds of the serving process tree meanwhile. */
interface Transfer {
  secs: number;
  cpu: number;
}

export interface BlobResults {
  size: number;
  reps: number;
  push: Record<Mode, Transfer[]>;
  pull: Record<Mode, Transfer[]>;
  /** Largest VmHWM of any process of each serving tree after all transfers (bytes). */
  peakRss: Record<Mode, number>;
}

/**
 * Pushes then pulls a `size`-byte blob through every target, `reps` times, rotating the order of
 * targets between repetitions so that drift on a shared machine spreads over all of them. CPU is
 * read around each transfer separately.
 */
export async function benchBlobs(
  targets: Target[],
  size: number,
  reps: number,
  log: (m: string) => void,
): Promise<BlobResults> {
  const digest = await blobDigest(size, 11);
  const push = perMode<Transfer[]>(() => []);
  const pull = perMode<Transfer[]>(() => []);
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + rep) % targets.length]!;
      const repo = `bench/blob-${t.mode}-${rep}`;
      const headers = await t.auth([`repository:${repo}:pull,push`]);
      const up = await withCpu(t.pid, () => pushBlob(t.url, repo, size, digest, headers, 11));
      const down = await withCpu(t.pid, () => pullBlob(t.url, repo, digest, size, headers, false));
      push[t.mode].push({ secs: up.value, cpu: up.cpu });
      pull[t.mode].push({ secs: down.value, cpu: down.cpu });
      const gib = size / 2 ** 30;
      log(
        `rep ${rep + 1} ${t.mode}: push ${fmt(size / 2 ** 20 / up.value, 0)} MiB/s ${fmt(up.cpu / gib)} CPU s/GiB, ` +
          `pull ${fmt(size / 2 ** 20 / down.value, 0)} MiB/s ${fmt(down.cpu / gib)} CPU s/GiB`,
      );
    }
  }
  const byMode = new Map(targets.map((t) => [t.mode, t]));
  const rss = perMode((m) => (byMode.has(m) ? (peakRss(byMode.get(m)!.pid)[0]?.bytes ?? NaN) : NaN));
  return { size, reps, push, pull, peakRss: rss };
}

/** Median MiB/s of the transfers. */
export function mibps(r: BlobResults, runs: Transfer[]): number {
  return r.size / 2 ** 20 / median(runs.map((t) => t.secs));
}

/** Median CPU seconds per GiB moved. */
export function cpuPerGiB(r: BlobResults, runs: Transfer[]): number {
  return median(runs.map((t) => t.cpu)) / (r.size / 2 ** 30);
}

/** Every run, for the report: "direct 1.23 s / 0.40 CPU s, ...". */
export function everyRun(r: BlobResults, which: 'push' | 'pull'): string {
  return MODES.filter((m) => r[which][m].length)
    .map((m) => `${m} ${r[which][m].map((t) => `${fmt(t.secs)}/${fmt(t.cpu)}`).join(', ')}`)
    .join('; ');
}
