import type { Command } from 'commander';
import { resolve } from 'node:path';
import { extendConfig, listenExposureProblem, loadConfig, missingIssuerProblem, SHIPPED_POLICY_PATH, type ServeFlags } from '../../config/load.js';
import { ConfigError } from '../../config/errors.js';
import type { Config } from '../../config/types.js';
import { devStateDir } from '../../dev/defaults.js';
import type { DevSession } from '../../dev/setup.js';
import { inClusterIssuer } from '../../identity/in-cluster.js';
import { createLogger, flushLogs, type Logger } from '../../log.js';
import { lintTenantPinning } from '../../policy/lint.js';
import { PolicyLoadError } from '../../policy/load.js';
import { startPrimary } from '../../server/cluster.js';
import { joinPrimary, workerSlot, type WorkerLink } from '../../server/cluster-worker.js';
import { resolveWorkers } from '../../server/cpus.js';
import type { PolicyEngine } from '../../policy/types.js';
import { startRuntime, type Runtime } from '../../server/runtime.js';
import { CliExit } from '../exit.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('run the proxy and its token endpoint (default command)')
    .option('--config <file>', 'YAML config file (env RAP_CONFIG); every flag below has a config key')
    .option('--upstream <url>', 'upstream registry base URL (upstream.url)')
    .option('--listen <host:port>', 'listen address, default 0.0.0.0:8080; a non-loopback address needs --public-url (listen)')
    .option('--public-url <url>', 'base URL clients see; realm = <public-url>/token; required unless listening on loopback (publicURL)')
    .option('--service <name>', 'token service name, `aud` of issued tokens (service)')
    .option('--issuer <url>', 'trust this OIDC issuer via discovery; repeatable (issuers[])', collect)
    .option(
      '--issuer-name <name>',
      'name of the --issuer issuer, as policies see it (identity.issuerName); repeatable, in --issuer order; default "default" (issuer1, issuer2, … for several)',
      collect,
    )
    .option('--ca-file <file>', "CA bundle for the --issuer issuers' HTTPS (issuers[].caFile)")
    .option('--audience <aud>', 'audience identity tokens must carry; repeatable (issuers[].audiences)', collect)
    .option('--policy <path>', 'policy file or directory; default ./policies when it exists, else the shipped policies/default.yaml (policies)')
    .option('--signing-key <file>', 'PEM private key, or a directory of keys, for issued tokens (tokens.signingKeyFile)')
    .option('--token-ttl <duration>', 'lifetime of issued tokens, default 5m (tokens.ttl)')
    .option(
      '--dev',
      'local trial: embedded dev issuer, allow-all dev policy, listen 127.0.0.1:8080, and (with no upstream configured) an embedded Distribution registry; writes an identity token to <state-dir>/token. Flags and --config still win',
    )
    .option(
      '--state-dir <dir>',
      '--dev only: registry storage, keys and the token file (env RAP_DEV_STATE_DIR; default $XDG_STATE_HOME/registry-auth-proxy/dev, i.e. ~/.local/state/registry-auth-proxy/dev)',
    )
    .option('--workers <n|auto>', 'processes serving requests on one socket; auto: one per available CPU (within a cgroup CPU quota); default 1 (workers)')
    .option('--log-level <level>', 'pino level, default info')
    .action(serve);
}

async function serve(opts: ServeFlags & { stateDir?: string }): Promise<void> {
  const { stateDir: stateDirFlag, ...flags } = opts;
  if (stateDirFlag !== undefined && !flags.dev) throw new CliExit(2, '--state-dir applies to --dev only');
  const loaded = loadConfig(flags);
  const exposure = listenExposureProblem(loaded);
  if (exposure) throw new ConfigError(loaded.file, 'publicURL', exposure);
  if (loaded.dev && loaded.workers !== 1) throw new CliExit(2, `--dev runs one process: workers must be 1, not ${loaded.workers}`);
  const slot = workerSlot();
  if (slot === undefined) return serveWith(loaded, stateDirFlag, undefined);
  // A worker of `workers: N`: however it ends, the channel to the primary must not hold the process.
  const link = await joinPrimary(slot);
  try {
    await serveWith(loaded, stateDirFlag, link);
  } finally {
    link.leave();
  }
}

/** One serving process: the only one (no `link`), or a worker of `workers: N`. */
async function serveWith(loaded: Config, stateDirFlag: string | undefined, link: WorkerLink | undefined): Promise<void> {
  // A person running --dev in a terminal reads the log; machines (and tests) get JSON.
  const root = createLogger(loaded.logLevel, process.stderr, { pretty: loaded.dev && process.stderr.isTTY === true });
  const logger = link ? root.child({ worker: link.slot }) : root;
  // The loaded Config is frozen: --dev and in-cluster mode each hand back an extended one.
  const dev = loaded.dev ? await startDev(loaded, stateDirFlag, logger) : undefined;
  const config = await withSomeIssuer(dev?.config ?? loaded, logger);
  // In a worker, the primary has checked the config and logged about it already.
  if (!link) logPolicySource(config, logger);
  const workers = link ? undefined : resolveWorkers(config.workers);
  if (workers && workers.count > 1) return servePrimary(config, workers, logger);
  const runtime = await startRuntime(config, logger, { sharedEphemeralPem: link?.sharedEphemeralPem, metricsText: link?.metricsText }).catch((err: unknown) =>
    startFailure(err, config),
  );
  if (!link) lintPolicies(runtime.policy, config, logger);
  // The banner comes after the log lines before it (they wait for the end of the turn).
  if (dev) {
    flushLogs();
    process.stderr.write(dev.banner);
  }
  await untilStopped(runtime, dev, logger, link);
  await dev?.stop();
  logger.info('stopped');
  exitNow(process.exitCode ?? 0);
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

/** `workers: N` (N > 1): this process is the primary; it returns once every worker has exited. */
async function servePrimary(config: Config, workers: ReturnType<typeof resolveWorkers>, logger: Logger): Promise<void> {
  logger.info({ workers: workers.count, setting: config.workers, cpus: workers.cpus, cpuQuota: workers.cpuQuota }, `starting ${workers.count} workers`);
  const primary = await startPrimary(config, workers.count, logger).catch((err: unknown) => startFailure(err, config));
  lintPolicies(primary.policy, config, logger);
  const code = await primary.exited;
  logger.info({ code }, 'stopped');
  // A worker that failed to start said why on stderr already.
  exitNow(code);
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

/** What a start-up failure means for the exit code: a bad policy or config is 2, a taken address 1. */
function startFailure(err: unknown, config: Config): never {
  if (err instanceof PolicyLoadError) throw new CliExit(2, `policy error: ${err.message}`);
  if (err instanceof ConfigError) throw err;
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
    throw new CliExit(1, `cannot listen on ${config.listen.host}:${config.listen.port}: address in use`);
  throw err;
}

/** Rules for GitHub/GitLab/Google issuers that never pin the owner grant to strangers: say so loudly. */
function lintPolicies(policy: PolicyEngine, config: Config, logger: Logger): void {
  for (const w of lintTenantPinning(policy.rules, config.issuers)) {
    logger.warn({ file: w.file, rule: w.rule, issuer: w.issuer, preset: w.preset, ownerPinned: w.pinned }, w.message);
  }
}

/** --dev: the embedded issuer, registry and kept keys, as a session holding the extended config. */
async function startDev(config: Config, stateDirFlag: string | undefined, logger: Logger): Promise<DevSession> {
  // Loaded only for --dev: the rest of the CLI starts without the registry and image code.
  const [{ setUpDev }, { DevSetupError }, { cliInvocation }] = await Promise.all([
    import('../../dev/setup.js'),
    import('../../dev/registry-binary.js'),
    import('../../dev/banner.js'),
  ]);
  const stateDir = devStateDir(stateDirFlag);
  try {
    return await setUpDev(config, { stateDir, logger, cli: cliInvocation(), verifyArgs: stateDir === devStateDir(undefined) ? [] : ['--state-dir', stateDir] });
  } catch (err) {
    if (err instanceof DevSetupError) throw new CliExit(2, `--dev: ${err.message}`);
    throw err;
  }
}

/**
 * No issuer outside a pod: nothing could ever be accepted, so refuse to start rather than listen,
 * say ready and refuse everyone. Inside a pod the cluster's own issuer is the default.
 */
async function withSomeIssuer(config: Config, logger: Logger): Promise<Config> {
  if (!missingIssuerProblem(config)) return config;
  const auto = await inClusterIssuer(config.service, { logger });
  const extended = auto ? extendConfig(config, { issuers: [auto] }) : config;
  const problem = missingIssuerProblem(extended);
  if (problem) throw new ConfigError(extended.file, 'issuers', problem);
  return extended;
}

/**
 * Resolves once the runtime stopped: on SIGTERM/SIGINT, when --dev's embedded registry dies, or
 * in a worker on the primary's word.
 */
function untilStopped(runtime: Runtime, dev: DevSession | undefined, logger: Logger, link: WorkerLink | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: finishing in-flight requests');
      runtime.stop().then(resolve, resolve);
    };
    // Kept, not once: a repeated signal must not kill a draining process (a terminal's Ctrl-C
    // reaches both this process and a launcher that forwards it: src/cli/launch.ts).
    process.on('SIGTERM', () => stop('SIGTERM'));
    // A terminal's Ctrl-C reaches the whole process group: a worker leaves it to the primary,
    // which has every worker drain (and would restart one that died of it).
    if (link) process.on('SIGINT', () => undefined);
    else process.on('SIGINT', () => stop('SIGINT'));
    link?.serve(runtime, () => stop('primary: drain'));
    // Without its registry the dev proxy can only answer 502: stop and say why instead.
    void dev?.registry?.exited.then(({ code, signal }) => {
      if (stopping) return;
      logger.error({ code, signal, log: dev.registry!.logTail() }, 'the embedded registry exited: stopping');
      process.exitCode = 1;
      stop('embedded registry exited');
    });
  });
}
