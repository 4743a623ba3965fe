import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time and peak memory of a serving process tree, read from /proc — the measure the issue
 * names (user + system time of the serving process, fields 14 and 15 of /proc/<pid>/stat). A tree,
 * because nginx's master forks the worker that does the work and the proxy with `workers: N` forks
 * N workers: the cost of a server is the sum over its root and every descendant.
 *
 * The kernel reports these times in clock ticks (usually 10 ms), so a measurement must span enough
 * work — seconds of CPU or thousands of requests — for one tick not to matter.
 */

let ticksPerSecond: number | undefined;

function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    let n = NaN;
    try {
      n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    } catch {
      // no getconf: Linux has reported USER_HZ = 100 to user space on every architecture we run on
    }
    ticksPerSecond = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** The fields of /proc/<pid>/stat after the command name, which may itself hold spaces and parentheses. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited
  }
}

/** The root and all its live descendants. /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, absent on some kernels: scan parent pids instead. */
export function processTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f) parentOf.set(Number(entry), Number(f[1])); // field 4, ppid
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === tree[i] && !tree.includes(pid)) tree.push(pid);
  }
  return tree;
}

type CpuSnapshot = Map<number, number>;

/** utime + stime of every process in the tree, in clock ticks (fields 14 and 15: indexes 11 and 12 after the name). */
function snapshot(root: number): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const pid of processTree(root)) {
    const f = statFields(pid);
    if (f) snap.set(pid, Number(f[11]) + Number(f[12]));
  }
  return snap;
}

/** CPU seconds spent between two snapshots. A process born in between counts whole; one that exited in between is lost (rare: a restarted worker). */
function secondsBetween(before: CpuSnapshot, after: CpuSnapshot): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks / clockTicksPerSecond();
}

/** Runs `work` and returns its value with the CPU seconds the process tree under `root` spent meanwhile. */
export async function withCpu<T>(root: number, work: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const before = snapshot(root);
  const value = await work();
  return { value, cpu: secondsBetween(before, snapshot(root)) };
}

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Peak resident set (VmHWM, bytes) of each process in the tree since it started, largest first. */
export function peakRss(root: number): { pid: number; bytes: number }[] {
  return processTree(root)
    .map((pid) => ({ pid, bytes: statusKb(pid, 'VmHWM') }))
    .sort((a, b) => b.bytes - a.bytes);
}

/** Current resident set (VmRSS, bytes) of the root process. */
export function currentRss(pid: number): number {
  return statusKb(pid, 'VmRSS');
}
