import type { Command } from 'commander';
import { listenExposureProblem, loadConfig, type ServeFlags } from '../../config/load.js';
import { ConfigError } from '../../config/errors.js';
import { createDevIssuer, DEV_POLICY_PATH } from '../../dev/issuer.js';
import { createLogger } from '../../log.js';
import { lintTenantPinning } from '../../policy/lint.js';
import { PolicyLoadError } from '../../policy/load.js';
import { startRuntime } from '../../server/runtime.js';
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
    .option('--audience <aud>', 'audience identity tokens must carry; repeatable (issuers[].audiences)', collect)
    .option('--policy <path>', 'policy file or directory, default ./policies (policies)')
    .option('--signing-key <file>', 'PEM private key, or a directory of keys, for issued tokens (tokens.signingKeyFile)')
    .option('--token-ttl <duration>', 'lifetime of issued tokens, default 5m (tokens.ttl)')
    .option('--dev', 'local trial: embedded dev issuer + dev policy, prints a usable token')
    .option('--log-level <level>', 'pino level, default info')
    .action(async (opts: ServeFlags) => {
      const flags: ServeFlags = { ...opts };
      if (flags.dev) {
        flags.upstream ??= process.env.RAP_UPSTREAM ?? 'http://127.0.0.1:5000';
        flags.policy ??= DEV_POLICY_PATH;
        flags.listen ??= '127.0.0.1:8080';
      }
      const config = loadConfig(flags);
      const exposure = listenExposureProblem(config);
      if (exposure) throw new ConfigError(config.file, 'publicURL', exposure);
      const logger = createLogger(config.logLevel);
      let devToken: string | undefined;
      if (config.dev) {
        const dev = await createDevIssuer(config);
        config.issuers.push(dev.issuer);
        devToken = dev.token;
      }
      let runtime;
      try {
        runtime = await startRuntime(config, logger);
      } catch (err) {
        if (err instanceof PolicyLoadError) throw new CliExit(2, `policy error: ${err.message}`);
        if (err instanceof ConfigError) throw err;
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliExit(1, `cannot listen on ${config.listen.host}:${config.listen.port}: address in use`);
        throw err;
      }
      // Rules for GitHub/GitLab/Google issuers that never pin the owner grant to strangers: say so loudly.
      for (const w of lintTenantPinning(runtime.policy.rules, config.issuers)) {
        logger.warn({ file: w.file, rule: w.rule, issuer: w.issuer, preset: w.preset, ownerPinned: w.pinned }, w.message);
      }
      if (devToken) {
        const host = new URL(config.publicURL).host;
        process.stderr.write(
          [
            '',
            'registry-auth-proxy --dev: NOT FOR PRODUCTION (embedded issuer, allow-all dev policy)',
            `  upstream: ${config.upstream?.url}   proxy: ${config.publicURL}`,
            '  identity token (valid 12h) — use it as the registry password:',
            '',
            devToken,
            '',
            `  skopeo copy --dest-tls-verify=false --dest-creds dev:${devToken.slice(0, 12)}… oci:./image docker://${host}/demo/app:latest`,
            `  echo "$TOKEN" | docker login ${host} -u dev --password-stdin`,
            '',
          ].join('\n'),
        );
        process.stdout.write(`${devToken}\n`);
      }
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'shutting down: finishing in-flight requests');
          runtime!.stop().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      logger.info('stopped');
      // Everything is closed; should a stray handle linger, it must not hold the pod in Terminating.
      setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
    });
}
