import { ConfigError } from '../config/errors.js';
import { urlHost } from '../config/net.js';
import type { Config } from '../config/types.js';
import { PolicyLoadError } from '../policy/load.js';
import { WORKER_SLOT_ENV } from './cluster-protocol.js';
import type { resolveWorkers } from './cpus.js';

/**
 * The process model's decisions, as values (process.ts acts on them): which of the three kinds of
 * process this is, what each signal does to it, and what a start-up failure means for the exit code.
 */

type Workers = ReturnType<typeof resolveWorkers>;

/**
 * `single`: the only serving process (`workers: 1`, or `auto` on one CPU); `primary`: `workers: N`
 * (N > 1), it forks and supervises N workers and serves nothing itself; `worker`: one of them.
 */
export type ProcessRole = { role: 'single' } | { role: 'primary'; workers: Workers } | { role: 'worker'; slot: number };

/**
 * What this process is: a worker when our primary forked it (not any cluster's worker, e.g. pm2's:
 * the slot env must be set too), else a primary when `workers` resolved to more than one. Pure.
 */
export function processRole(facts: { clusterWorker: boolean; env: NodeJS.ProcessEnv; workers: Workers }): ProcessRole {
  const slot = Number(facts.env[WORKER_SLOT_ENV]);
  if (facts.clusterWorker && Number.isInteger(slot) && slot > 0) return { role: 'worker', slot };
  return facts.workers.count > 1 ? { role: 'primary', workers: facts.workers } : { role: 'single' };
}

/** What a signal does once the process serves: drain and stop, or nothing. A signal not listed keeps Node's default. */
type SignalAction = 'stop' | 'ignore';

/**
 * SIGTERM and SIGINT drain every process, except that a terminal's Ctrl-C reaches the whole process
 * group: a worker leaves SIGINT to the primary, which has every worker drain (and would restart one
 * that died of it). SIGHUP keeps Node's default (the process ends). Pure.
 */
export function signalActions(role: ProcessRole['role']): Partial<Record<NodeJS.Signals, SignalAction>> {
  return { SIGTERM: 'stop', SIGINT: role === 'worker' ? 'ignore' : 'stop' };
}

/**
 * What a start-up failure means for the exit code: a bad policy is 2, a taken address 1 (with the
 * address and the fix); undefined
 * when the error speaks for itself (a ConfigError is a config error, exit 2; anything else exit 1). Pure.
 */
export function startFailure(err: unknown, listen: Config['listen']): { code: 1 | 2; message: string } | undefined {
  if (err instanceof PolicyLoadError) return { code: 2, message: `policy error: ${err.message}` };
  if (err instanceof ConfigError) return undefined;
  const why = LISTEN_ERRORS[(err as NodeJS.ErrnoException | undefined)?.code ?? ''];
  if (why) return { code: 1, message: `cannot listen on ${urlHost(listen.host)}:${listen.port}: ${why(listen)}` };
  return undefined;
}

/** Why the listener could not bind, and the fix: an operational failure (the same command works once the cause is gone). */
const LISTEN_ERRORS: Record<string, (listen: Config['listen']) => string> = {
  EADDRINUSE: () =>
    'the address is in use (another process listens there): stop that process, or choose another address with --listen <host:port> (config key listen)',
  EADDRNOTAVAIL: (l) =>
    `${l.host} is not an address of this machine: give one of its addresses, or 0.0.0.0 for all, with --listen (config key listen)`,
  EACCES: () =>
    'permission denied (a port below 1024 needs privileges): choose a port of 1024 or above with --listen (config key listen)',
};

/** A start-up failure with its exit code and message (the CLI prints the message and exits with the code). */
export class StartFailure extends Error {
  constructor(
    readonly code: 1 | 2,
    message: string,
  ) {
    super(message);
    this.name = 'StartFailure';
  }
}
