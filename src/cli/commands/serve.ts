import { createServer } from 'node:net';
import type { Command } from 'commander';
import { listenExposureProblem, loadConfig, type ServeFlags } from '../../config/load.js';
import { ConfigError } from '../../config/errors.js';
import type { Config } from '../../config/types.js';
import { devStateDir } from '../../dev/defaults.js';
import type { DevSession } from '../../dev/setup.js';
import { createLogger, type Logger } from '../../log.js';
import { runProcess } from '../../server/process.js';
import { StartFailure, startFailure } from '../../server/process-role.js';
import { CliExit } from '../exit.js';

/**
 * `serve`: flags → config (and the --dev session) → the process model (server/process.ts), which
 * decides single, primary or worker, serves, handles signals and exits.
 */

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the proxy and its token endpoint (default command)')
    .option('--config <file>', 'YAML config file (env RAP_CONFIG); every flag below has a config key')
    .option('--upstream <url>', 'upstream registry base URL (upstream.url)')
    .option(
      '--listen <host:port>',
      'listen address, default 0.0.0.0:8080; a non-loopback address needs --public-url (listen)',
    )
    .option(
      '--public-url <url>',
      'base URL clients see; realm = <public-url>/token; required unless listening on loopback (publicURL)',
    )
    .option('--service <name>', 'token service name, `aud` of issued tokens (service)')
    .option('--issuer <url>', 'trust this OIDC issuer via discovery; repeatable (issuers[])', collect)
    .option(
      '--issuer-name <name>',
      'name of the --issuer issuer, as policies see it (identity.issuerName); repeatable, in --issuer order; default "default" (issuer1, issuer2, … for several)',
      collect,
    )
    .option('--ca-file <file>', "CA bundle for the --issuer issuers' HTTPS (issuers[].caFile)")
    .option('--audience <aud>', 'audience identity tokens must carry; repeatable (issuers[].audiences)', collect)
    .option(
      '--policy <path>',
      'policy file or directory; default ./policies when it exists, else the shipped policies/default.yaml (policies)',
    )
    .option(
      '--signing-key <file>',
      'PEM private key, or a directory of keys, for issued tokens (tokens.signingKeyFile)',
    )
    .option('--token-ttl <duration>', 'lifetime of issued tokens, default 5m (tokens.ttl)')
    .option(
      '--dev',
      'local trial: embedded dev issuer, allow-all dev policy, listen 127.0.0.1:8080, and (with no upstream configured) an embedded Distribution registry; writes an identity token to <state-dir>/token. Flags and --config still win',
    )
    .option(
      '--state-dir <dir>',
      '--dev only: registry storage, keys and the token file (env RAP_DEV_STATE_DIR; default $XDG_STATE_HOME/registry-auth-proxy/dev, i.e. ~/.local/state/registry-auth-proxy/dev)',
    )
    .option(
      '--workers <n|auto>',
      'processes serving requests on one socket; auto: one per available CPU (within a cgroup CPU quota); default 1 (workers)',
    )
    .option('--log-level <level>', 'pino level, default info')
    .action(serve);
}

async function serve(opts: ServeFlags & { stateDir?: string }): Promise<void> {
  const { stateDir: stateDirFlag, ...flags } = opts;
  if (stateDirFlag !== undefined && !flags.dev) throw new CliExit(2, '--state-dir applies to --dev only');
  const loaded = loadConfig(flags);
  const exposure = listenExposureProblem(loaded);
  if (exposure) throw new ConfigError(loaded.file, 'publicURL', exposure);
  if (loaded.dev && loaded.workers !== 1)
    throw new CliExit(2, `--dev runs one process: workers must be 1, not ${loaded.workers}`);
  // A person running --dev in a terminal reads the log; machines (and tests) get JSON.
  const logger = createLogger(loaded.logLevel, process.stderr, { pretty: loaded.dev && process.stderr.isTTY === true });
  // The loaded Config is frozen: --dev hands back an extended one (and runs one process: never a worker).
  // The address is tried before --dev starts its registry: a taken port is said at once, with nothing to stop.
  if (loaded.dev) await tryListen(loaded.listen);
  const dev = loaded.dev ? await startDev(loaded, stateDirFlag, logger) : undefined;
  await runProcess(dev?.config ?? loaded, logger, dev).catch((err: unknown) => {
    throw err instanceof StartFailure ? new CliExit(err.code, err.message) : err;
  });
}

/** Binds `listen` and lets go again; a failure is the CliExit serving would end with. */
async function tryListen(listen: Config['listen']): Promise<void> {
  if (listen.port === 0) return;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => server.close(() => resolve()));
  }).catch((err: unknown) => {
    const failure = startFailure(err, listen);
    throw failure ? new CliExit(failure.code, failure.message) : err;
  });
}

/**
 * --dev: the embedded issuer, registry and kept keys, as a session holding the extended config. A
 * CLI concern, started here rather than by the process model: it reads --state-dir and how the CLI
 * was invoked (for the banner), its failures are usage errors (exit 2), and server/ never imports dev/.
 */
async function startDev(config: Config, stateDirFlag: string | undefined, logger: Logger): Promise<DevSession> {
  // Loaded only for --dev: the rest of the CLI starts without the registry and image code.
  const [{ setUpDev }, { DevSetupError }, { cliInvocation }] = await Promise.all([
    import('../../dev/setup.js'),
    import('../../dev/registry-binary.js'),
    import('../../dev/banner.js'),
  ]);
  const stateDir = devStateDir(stateDirFlag);
  try {
    return await setUpDev(config, {
      stateDir,
      logger,
      cli: cliInvocation(),
      verifyArgs: stateDir === devStateDir(undefined) ? [] : ['--state-dir', stateDir],
    });
  } catch (err) {
    if (err instanceof DevSetupError) throw new CliExit(2, `--dev: ${err.message}`);
    throw err;
  }
}
