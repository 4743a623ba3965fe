/**
 * The benchmark's load generator as a process of its own (started by bench/lib/load.ts
 * startLoadProcess): receives LoadOptions over IPC, runs them, answers with the latency result and
 * the CPU seconds it spent itself — the client competes for the same cores as the servers it
 * measures, and the report says how much.
 */
import { measureLatency, type LoadOptions } from '../lib/load.js';

process.on('message', (opts: LoadOptions) => {
  const before = process.cpuUsage();
  void measureLatency(opts).then(
    (result) => {
      const used = process.cpuUsage(before);
      process.send!({ ...result, clientCpu: (used.user + used.system) / 1e6 });
    },
    (err: unknown) => {
      process.stderr.write(`[load-gen] ${String(err)}\n`);
      process.exit(1);
    },
  );
});
process.on('disconnect', () => process.exit(0));
