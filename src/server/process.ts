import cluster from 'node:cluster';
import { resolve } from 'node:path';
import { SHIPPED_POLICY_PATH } from '../config/load.js';
import type { Config, IssuerConfig } from '../config/types.js';
import { flushLogs, type Logger } from '../log.js';
import { lintAbsentFacts, lintTenantPinning } from '../policy/lint.js';
import type { PolicyEngine } from '../policy/types.js';
import { startPrimary } from './cluster.js';
import { joinPrimary, type WorkerLink } from './cluster-worker.js';
import { resolveWorkers } from './cpus.js';
import { clusterIssuerFor, requireSomeIssuer, withClusterIssuer } from './in-cluster.js';
import { processRole, signalActions, startFailure, StartFailure, type ProcessRole } from './process-role.js';
import { startRuntime, type Runtime } from './runtime.js';

/**
 * The one owner of the process model: given a loaded config, it decides what this process is
 * (process-role.ts), starts it, handles its signals, drains it and exits with its code. A start-up
 * failure rejects (a StartFailure with its exit code, or the error as it came); once serving, the
 * process ends here.
 */

/**
 * What runs beside a single serving process: --dev's session. The CLI starts it (server/ never
 * imports dev/); the process prints its banner once serving, stops when its registry dies, and
 * stops it last.
 */
interface Companion {
  banner: string;
  registry?: { exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; logTail(): string };
  stop(): Promise<void>;
}

export async function runProcess(loaded: Config, logger: Logger, companion?: Companion): Promise<void> {
  const role = processRole({
    clusterWorker: cluster.isWorker,
    env: process.env,
    workers: resolveWorkers(loaded.workers),
  });
  if (role.role === 'worker') return runWorker(loaded, logger.child({ worker: role.slot }), role.slot);
  const issuer = await clusterIssuerFor(loaded, logger);
  const config = withClusterIssuer(loaded, issuer);
  requireSomeIssuer(config);
  logPolicySource(config, logger);
  if (role.role === 'primary') return runPrimary(config, role.workers, logger, issuer);
  return runSingle(config, logger, companion);
}

/** The only serving process: `workers: 1`, or --dev. */
async function runSingle(config: Config, logger: Logger, companion: Companion | undefined): Promise<void> {
  const runtime = await startRuntime(config, logger).catch(async (err: unknown) => {
    // --dev's registry is started before the proxy: it must not outlive a proxy that never served.
    await companion?.stop();
    return failed(err, config);
  });
  lintPolicies(runtime.policy, config, logger);
  // The banner comes after the log lines before it (they wait for the end of the turn).
  if (companion) {
    flushLogs();
    process.stderr.write(companion.banner);
  }
  await untilStopped(runtime, logger, { role: 'single', companion });
  await companion?.stop();
  logger.info('stopped');
  exitNow(process.exitCode ?? 0);
}

/** A worker of `workers: N`: the primary has checked the config, logged about it and decided the issuer. */
async function runWorker(loaded: Config, logger: Logger, slot: number): Promise<void> {
  const link = await joinPrimary(slot);
  // However it ends, the channel to the primary must not hold the process.
  try {
    const config = withClusterIssuer(loaded, link.clusterIssuer);
    const runtime = await startRuntime(config, logger, {
      sharedEphemeralPem: link.sharedEphemeralPem,
      metricsText: link.metricsText,
    }).catch((err: unknown) => failed(err, config));
    await untilStopped(runtime, logger, { role: 'worker', link });
    logger.info('stopped');
    exitNow(process.exitCode ?? 0);
  } finally {
    link.leave();
  }
}

/** `workers: N` (N > 1): this process is the primary; it ends once every worker has exited. */
async function runPrimary(
  config: Config,
  workers: Extract<ProcessRole, { role: 'primary' }>['workers'],
  logger: Logger,
  issuer: IssuerConfig | undefined,
): Promise<void> {
  logger.info(
    { workers: workers.count, setting: config.workers, cpus: workers.cpus, cpuQuota: workers.cpuQuota },
    `starting ${workers.count} workers`,
  );
  const primary = await startPrimary(config, workers.count, logger, issuer).catch((err: unknown) =>
    failed(err, config),
  );
  onSignals('primary', (signal) => primary.stop(signal));
  lintPolicies(primary.policy, config, logger);
  const code = await primary.exited;
  logger.info({ code }, 'stopped');
  // A worker that failed to start said why on stderr already.
  exitNow(code);
}

/**
 * Everything is closed: exit now, not when the event loop empties. A stray handle must not hold the
 * pod in Terminating, and Node's teardown puts signals back to their default first, so a second
 * SIGTERM/SIGINT then (a launcher forwarding what its process group got too, systemd signalling the
 * whole cgroup) would kill a process that had drained cleanly.
 */
function exitNow(code: number | string): never {
  flushLogs();
  process.exit(code);
}

function failed(err: unknown, config: Config): never {
  const failure = startFailure(err, config.listen);
  throw failure ? new StartFailure(failure.code, failure.message) : err;
}

/** Kept, not once: a repeated signal must not kill a draining process (a terminal's Ctrl-C reaches both this process and a launcher that forwards it: src/cli/launch.ts). */
function onSignals(role: ProcessRole['role'], stop: (signal: string) => void): void {
  for (const [signal, action] of Object.entries(signalActions(role))) {
    process.on(signal, action === 'stop' ? () => stop(signal) : () => undefined);
  }
}

/**
 * Resolves once the runtime stopped: on a signal, when --dev's embedded registry dies, or in a
 * worker on the primary's word.
 */
function untilStopped(
  runtime: Runtime,
  logger: Logger,
  as: { role: 'single' | 'worker'; link?: WorkerLink; companion?: Companion },
): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: finishing in-flight requests');
      runtime.stop().then(resolve, resolve);
    };
    onSignals(as.role, stop);
    as.link?.serve(runtime, () => stop('primary: drain'));
    // Without its registry the dev proxy can only answer 502: stop and say why instead.
    const registry = as.companion?.registry;
    void registry?.exited.then(({ code, signal }) => {
      if (stopping) return;
      logger.error({ code, signal, log: registry.logTail() }, 'the embedded registry exited: stopping');
      process.exitCode = 1;
      stop('embedded registry exited');
    });
  });
}

function logPolicySource(config: Config, logger: Logger): void {
  if (config.policies === SHIPPED_POLICY_PATH) {
    logger.info(
      { policies: config.policies },
      'no policy configured and no ./policies here: using the shipped default policy (deny by default; Kubernetes service accounts may pull and push under <their namespace>/, nobody deletes under releases/; nothing else is granted)',
    );
  } else {
    logger.info({ policies: resolve(config.policies) }, 'loading policies');
  }
}

/**
 * Rules for GitHub/GitLab/Google issuers that never pin the owner grant to strangers: say so loudly.
 * Request-time rules reading request.tag/digest without has() refuse every request lacking one: say so.
 */
function lintPolicies(policy: PolicyEngine, config: Config, logger: Logger): void {
  for (const w of lintTenantPinning(policy.rules, config.issuers)) {
    logger.warn({ file: w.file, rule: w.rule, issuer: w.issuer, preset: w.preset, ownerPinned: w.pinned }, w.message);
  }
  for (const w of lintAbsentFacts(policy.rules))
    logger.warn({ file: w.file, rule: w.rule, fields: w.fields }, w.message);
}
