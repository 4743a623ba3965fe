import { Command, CommanderError } from 'commander';
import * as credentialProvider from './commands/credential-provider.js';
import { CliExit } from './exit.js';

/**
 * Entry of the kubelet credential provider as a single executable
 * (scripts/build-credential-provider.sh bundles this file alone): only the `credential-provider`
 * command, so a pull does not load the proxy, its config loader or the cloud SDKs. It answers to
 * `<exe> credential-provider [options]` (the sample configs' `args`) and to `<exe> [options]`,
 * with the same options, output and exit codes as `registry-auth-proxy credential-provider`.
 * `<exe> install --dir <dir> [--name <name>] [--wait]` copies the executable itself into kubelet's
 * bin dir (credential-provider-install.ts, loaded for that command only).
 */
async function run(argv: string[]): Promise<number> {
  const program = new Command('registry-auth-proxy').showHelpAfterError().exitOverride();
  const args = argv.slice(2);
  if (args[0] === 'install') {
    (await import('./credential-provider-install.js')).register(program);
  } else {
    credentialProvider.register(program);
    if (args[0] !== 'credential-provider') args.unshift('credential-provider');
  }
  try {
    await program.parseAsync(args, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CliExit) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      return err.code;
    }
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}

void run(process.argv).then((code) => {
  process.exitCode = code;
});
