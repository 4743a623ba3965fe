import { spawn } from 'node:child_process';
import { accessSync, constants as fs } from 'node:fs';
import { close as closeInspector, url as inspectorUrl } from 'node:inspector';
import { constants } from 'node:os';
import { delimiter, join } from 'node:path';
import { streamingRelaunch } from '../server/heap-flags.js';

/**
 * The first thing `bin/registry-auth-proxy.js` runs, before the CLI is even loaded: a command that
 * serves is re-executed with the streaming settings of server/heap-flags.ts, whichever way it was
 * started (npm start, npm run dev, a global install, a systemd unit, the container image). Other
 * commands (verify, policy test, the kubelet plugin, …) stay one quick process.
 */

/** Signals a supervising launcher passes on to the serving process (a terminal's Ctrl-C reaches both; serve stops once). */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'];

/**
 * Whether `args` (the command line after the script) runs `serve`: commander dispatches on the first
 * word, and `serve` is the default command, so anything but another command's name serves, unless
 * it only asks for help or the version. Pure.
 */
export function servesRequests(args: readonly string[]): boolean {
  return (args[0] === 'serve' || runsDefaultCommand(args)) && !asksHelpOrVersion(args);
}

/**
 * `args` with the default command named: `serve` goes first when they name no command (no words,
 * or options only). commander's own default command would also take a misspelt command (`servee`)
 * as serve's argument ("too many arguments"); named here, an unknown word stays an unknown command,
 * with commander's "did you mean". Help and version asked at the top stay the program's. Pure.
 */
export function withDefaultCommand(args: readonly string[]): string[] {
  return runsDefaultCommand(args) && !asksHelpOrVersion(args) ? ['serve', ...args] : [...args];
}

function runsDefaultCommand(args: readonly string[]): boolean {
  const first = args[0];
  return first === undefined || (first.startsWith('-') && first !== '--');
}

function asksHelpOrVersion(args: readonly string[]): boolean {
  const own = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  return own.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version');
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/**
 * Re-executes this process as its serving self when it needs the settings. Returns false when this
 * process should run the CLI itself; true when another process serves and this one only waits for
 * it (Node < 22.15, which lacks process.execve) and then ends as it did.
 */
export function relaunchToServe(argv: readonly string[] = process.argv): boolean {
  if (!servesRequests(argv.slice(2))) return false;
  const relaunch = streamingRelaunch(process.execArgv, process.env);
  if (!relaunch) return false;
  // The parent's own flags (a loader, --inspect, --cpu-prof) come along; argv[1] is the script.
  const args = [...relaunch.execArgv, ...argv.slice(1)];
  const env = { ...process.env, ...relaunch.env };
  const execve = (process as { execve?: Execve }).execve;
  if (typeof execve === 'function') {
    try {
      // The same pid, stdio, terminal and parent: nothing to pass through.
      execve(process.execPath, [process.argv0, ...args], env);
    } catch {
      // not permitted here (e.g. a seccomp profile): supervise a child instead
    }
  }
  superviseChild(args, env);
  return true;
}

/** One serving child with the same stdio and process group; signals forwarded, its exit or signal death made ours. */
function superviseChild(args: string[], env: NodeJS.ProcessEnv): void {
  // The child takes the inspector's port (it inherited --inspect): the launcher has nothing to debug.
  if (inspectorUrl()) closeInspector();
  // Under `setpriv --pdeathsig` where there is one: should the launcher be killed outright, the kernel
  // stops the server (which drains, and stops a --dev registry) rather than leave it orphaned.
  const setpriv = process.platform === 'linux' ? onPath('setpriv', env.PATH) : undefined;
  const child = setpriv
    ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', process.execPath, ...args], { stdio: 'inherit', env })
    : spawn(process.execPath, args, { stdio: 'inherit', env, argv0: process.argv0 });
  const forward = (signal: NodeJS.Signals) => void child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  child.once('error', (err) => {
    process.stderr.write(`registry-auth-proxy: cannot start the serving process: ${err.message}\n`);
    process.exitCode = 1;
  });
  child.once('exit', (code, signal) => {
    for (const s of FORWARDED) process.off(s, forward);
    if (signal === null) return void (process.exitCode = code ?? 1);
    // Die of the same signal, so a shell or systemd sees what happened; 128 + n where it cannot kill us.
    process.exitCode = 128 + (constants.signals[signal] ?? 0);
    process.kill(process.pid, signal);
  });
}

function onPath(name: string, path = ''): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), fs.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}
