import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
const HELPER_ENTRY = fileURLToPath(new URL('./credential-helper-entry.ts', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Only PATH and `env` reach the child (nothing of the tester's own environment). */
  cleanEnv?: boolean;
}

function run(
  entry: string,
  args: string[],
  opts: RunOptions,
  loader: string[] = ['--import', 'tsx'],
): Promise<CliResult> {
  return runExecutable(process.execPath, [...loader, entry, ...args], opts);
}

/** Runs any executable with `args`, feeding `opts.stdin` and collecting its output (killed after `timeoutMs`). */
export function runExecutable(file: string, args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.cleanEnv ? { PATH: process.env.PATH, ...opts.env } : { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Runs `registry-auth-proxy <args>` from the TypeScript sources (no build needed). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return run(ENTRY, args, opts);
}

/** Runs `docker-credential-registry-auth-proxy <args>` from the sources. */
export function runCredentialHelper(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return run(HELPER_ENTRY, args, opts);
}

/** Runs one of the built `bin/` entry points (needs `npm run build`), as an installed command would run. */
export function runBuiltBin(
  bin: 'registry-auth-proxy' | 'docker-credential-registry-auth-proxy',
  args: string[],
  opts: RunOptions = {},
): Promise<CliResult> {
  return run(join(ROOT, 'bin', `${bin}.js`), args, opts, []);
}

export { ROOT };
