import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { listenerPid } from '../support/proc.js';
import { requireTool } from '../support/tools.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The proxy as a child process (`registry-auth-proxy serve --config …`), for RSS sampling and signals. */
export interface ProxyProcess {
  child: ChildProcess;
  /** The process serving the port: `child` itself, or the child it re-executed itself as (src/cli/launch.ts, Node < 22.15). */
  pid: number;
  url: string;
  output(): string;
  /** Peak resident set size so far (VmHWM), in bytes. */
  peakRss(): number;
  rss(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function status(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export interface ProxyProcessOptions {
  built?: boolean;
  /** Run under this open-files limit, soft and hard (`prlimit --nofile`, which execs: the pid stays the proxy's). */
  openFiles?: number;
}

export async function startProxyProcess(
  configFile: string,
  url: string,
  opts: ProxyProcessOptions = {},
): Promise<ProxyProcess> {
  if (opts.built && !existsSync(`${ROOT}/dist/cli/main.js`))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  const args = opts.built
    ? [`${ROOT}/bin/registry-auth-proxy.js`, 'serve', '--config', configFile]
    : ['--import', 'tsx', ENTRY, 'serve', '--config', configFile];
  const [cmd, argv] = opts.openFiles
    ? [requireTool('prlimit'), [`--nofile=${opts.openFiles}:${opts.openFiles}`, '--', process.execPath, ...args]]
    : [process.execPath, args];
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`proxy exited with ${child.exitCode}:\n${out}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`proxy did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = listenerPid(Number(new URL(url).port));
  return {
    child,
    pid,
    url,
    output: () => out,
    peakRss: () => status(pid, 'VmHWM'),
    rss: () => status(pid, 'VmRSS'),
    stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return Promise.resolve(child.exitCode);
      child.kill(signal);
      return new Promise((r) => child.once('exit', (code) => r(code)));
    },
  };
}
