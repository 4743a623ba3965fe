import { z } from 'zod';

const PROBLEM = 'must be a whole number from 1 to 1024, or auto';

/** `workers` (and `--workers`): a count of processes, or `auto` (server/cpus.ts resolves it). */
export const workersSetting = z
  .union(
    [
      z.literal('auto', { error: PROBLEM }),
      z.number({ error: PROBLEM }).int(PROBLEM).min(1, PROBLEM).max(1024, PROBLEM),
    ],
    { error: PROBLEM },
  )
  .default(1)
  .describe(
    'processes serving requests on the one listening socket (node:cluster); auto: one per available CPU, within a cgroup CPU quota; default 1 (no extra process)',
  );
