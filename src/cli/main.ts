import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/errors.js';
import { CliExit } from './exit.js';
import { withDefaultCommand } from './launch.js';
import { flushLogs } from '../log.js';
import { versionText } from './version.js';
import * as serve from './commands/serve.js';
import * as verify from './commands/verify.js';
import * as policy from './commands/policy.js';
import * as keys from './commands/keys.js';
import * as credentialProvider from './commands/credential-provider.js';
import * as login from './commands/login.js';
import * as controller from './commands/controller.js';
import * as mirrorConfig from './commands/mirror-config.js';

/** Each command module registers itself; this file only wires commander and maps errors to exit codes. */
const COMMANDS = [serve, verify, policy, keys, credentialProvider, login, controller, mirrorConfig];

export function buildProgram(): Command {
  const program = new Command('registry-auth-proxy')
    .description('Authenticating reverse proxy: passwordless, identity-based access control for container registries')
    // `--version` as commander's .version() would have it, but read when asked: versionText() reads
    // two files (and may run git in a checkout), which no other command, nor a kubelet pull, needs.
    .option('-V, --version', 'output the version number')
    .on('option:version', () => {
      const text = versionText();
      process.stdout.write(`${text}\n`);
      throw new CommanderError(0, 'commander.version', text);
    })
    .showHelpAfterError()
    .exitOverride();
  for (const c of COMMANDS) c.register(program);
  // `serve` is the default command, so its options are the ones most people need: show them in the
  // top-level help too rather than only under `serve --help`.
  const serveCommand = program.commands.find((c) => c.name() === 'serve');
  if (serveCommand) {
    program.addHelpText('after', () => {
      const options = serveCommand
        .helpInformation()
        .replace(/^[\s\S]*?\nOptions:\n/, '')
        .replace(/\n+$/, '');
      return `\nregistry-auth-proxy [serve] [options] (serve is the default command):\n${options}\n`;
    });
  }
  return program;
}

/** Runs the CLI; resolves to the process exit code (0 success, 1 operational failure, 2 usage/config error). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    // argv: node, the script, then what the user typed
    await program.parseAsync([...argv.slice(0, 2), ...withDefaultCommand(argv.slice(2))]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // What was logged before the failure is written before the message that ends the run.
    flushLogs();
    if (err instanceof CliExit) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      return err.code;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommanderError) {
      // help and version are successes; anything else is a usage error
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}
