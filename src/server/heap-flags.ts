/**
 * How a serving process should be started. Streaming allocates a 64 KiB Buffer per socket read
 * and frees them in bulk after each garbage collection; two defaults turn that into CPU:
 *
 * - V8: with its default heuristics about half the proxy processes on the bench machine settled
 *   into a mark-compact of the whole ~18 MB heap every ~70 ms of a transfer (--trace-gc: 30–110 per
 *   2 GiB pulled, a bare pipe 0–1). A fixed initial old-space size keeps V8 from deriving a tight
 *   limit at start-up: 1–4 per 2 GiB, CPU per GiB pulled −30 to −50 %, peak RSS unchanged.
 * - glibc malloc: the buffers come from the heap (below the 128 KiB mmap threshold); each bulk free
 *   leaves a free top of many MiB, which malloc trims with brk(2) only to grow it again, page-faulting
 *   it back in. Processes whose dynamic trim threshold stayed at its 128 KiB start made ~1,200 brk
 *   calls per 256 MiB pulled (strace) and paid it in system time; a 32 MiB threshold: 0–20. In the
 *   benchmark (2026-11-23): pull 2.12 → 1.28 CPU s/GiB, push 1.42 → 1.07, peak RSS 120 → 131 MB.
 *   Still, one fresh process in five trims at 32 MiB (2026-12-06, 15 processes: ~1,000 brk and
 *   50–80 k minor faults per GiB pulled, 2.7–3.1 CPU s/GiB against 1.2–1.6): one GC can free more
 *   than 32 MiB at once. 128 MiB removed that (0 of 16) but the 1 GiB streaming test then peaked at
 *   177 MB RSS on a loaded machine, over the 150 MB bound: kept at 32 MiB until measured apart.
 *
 * Neither can be changed once the process runs (nor the flag through NODE_OPTIONS: Node 20 and 24
 * refuse it there), so they go on its command line and environment: `bin/registry-auth-proxy.js`
 * re-executes a serving command with them (src/cli/launch.ts; every entry point, the image too),
 * and the cluster primary forks its workers with them.
 */
export const STREAMING_HEAP_FLAG = '--initial-old-space-size=64';
export const STREAMING_MALLOC_ENV = { MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024) } as const;

/** `execArgv` with STREAMING_HEAP_FLAG, unless the operator already chose an initial heap size. Pure. */
export function withStreamingHeap(execArgv: readonly string[]): string[] {
  const chosen = execArgv.some((a) => a.startsWith('--initial-old-space-size') || a.startsWith('--initial-heap-size'));
  return chosen ? [...execArgv] : [...execArgv, STREAMING_HEAP_FLAG];
}

/** The malloc settings for a child's environment, unless `env` already has any malloc tuning. Pure. */
export function streamingMallocEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const tuned = Object.keys(env).some((k) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES');
  return tuned ? {} : { ...STREAMING_MALLOC_ENV };
}

/**
 * Set by the launcher on the serving process it starts (so that process never starts another), and
 * by an operator who wants the process exactly as started: any value leaves both settings alone.
 */
export const STREAMING_SETTINGS_ENV = 'RAP_STREAMING_SETTINGS';

/** The command line and environment additions a serving process is restarted with. */
interface StreamingRelaunch {
  execArgv: string[];
  env: Record<string, string>;
}

/**
 * What this process must be re-executed with to stream as measured: undefined when it already runs
 * with both settings, the operator chose their own for both, or opted out. An operator's own choice
 * of one setting is kept while the other is added. Pure.
 */
export function streamingRelaunch(execArgv: readonly string[], env: NodeJS.ProcessEnv): StreamingRelaunch | undefined {
  if (env[STREAMING_SETTINGS_ENV] !== undefined) return undefined;
  const heap = withStreamingHeap(execArgv);
  const malloc = streamingMallocEnv(env);
  if (heap.length === execArgv.length && Object.keys(malloc).length === 0) return undefined;
  return { execArgv: heap, env: { ...malloc, [STREAMING_SETTINGS_ENV]: 'applied' } };
}
