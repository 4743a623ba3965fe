import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * How many workers `workers: auto` means: the CPUs this process may run on, bounded by a cgroup CPU
 * quota where one is set (a pod with `limits.cpu: 2` on a 64-core node gets 2, not 64: more workers
 * than the quota only adds throttling and memory).
 */

/** The cgroup files that carry a CPU quota, as read (absent: undefined). */
export interface CgroupCpuFiles {
  /** cgroup v2 `cpu.max`: `max 100000` (no quota) or `<quota> <period>`. */
  cpuMax?: string;
  /** cgroup v1 `cpu.cfs_quota_us` (`-1`: no quota) and `cpu.cfs_period_us`. */
  cfsQuota?: string;
  cfsPeriod?: string;
}

/** CPUs the quota allows, rounded up (1.5 CPUs: 2 workers), at least 1; undefined without a quota. Pure. */
export function cgroupCpuLimit(files: CgroupCpuFiles): number | undefined {
  const [quota, period] =
    files.cpuMax !== undefined ? files.cpuMax.trim().split(/\s+/) : [files.cfsQuota?.trim(), files.cfsPeriod?.trim()];
  if (quota === undefined || quota === 'max' || !/^\d+$/.test(quota)) return undefined;
  const periodUs = Number(period ?? 100_000);
  if (!Number.isFinite(periodUs) || periodUs <= 0) return undefined;
  return Math.max(1, Math.ceil(Number(quota) / periodUs));
}

/** The number of workers `setting` means with `parallelism` CPUs available and `limit` from the quota. Pure. */
export function workerCount(setting: number | 'auto', parallelism: number, limit: number | undefined): number {
  if (setting !== 'auto') return setting;
  return Math.max(1, Math.min(parallelism, limit ?? parallelism));
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * This process's cgroup CPU files: v2 in its own cgroup (from /proc/self/cgroup) or at the mount's
 * root (a container's namespace), else v1's cpu controller.
 */
function readCgroupCpuFiles(): CgroupCpuFiles {
  const own = /^0::(\/.*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1];
  const cpuMax =
    (own && own !== '/' ? read(`/sys/fs/cgroup${own}/cpu.max`) : undefined) ?? read('/sys/fs/cgroup/cpu.max');
  if (cpuMax !== undefined) return { cpuMax };
  for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    const cfsQuota = read(`${dir}/cpu.cfs_quota_us`);
    if (cfsQuota !== undefined) return { cfsQuota, cfsPeriod: read(`${dir}/cpu.cfs_period_us`) };
  }
  return {};
}

/** `workers` resolved on this machine, with what `auto` saw (for the start-up log line). */
export function resolveWorkers(setting: number | 'auto'): { count: number; cpus: number; cpuQuota?: number } {
  const cpus = availableParallelism();
  const cpuQuota = setting === 'auto' ? cgroupCpuLimit(readCgroupCpuFiles()) : undefined;
  return { count: workerCount(setting, cpus, cpuQuota), cpus, cpuQuota };
}
