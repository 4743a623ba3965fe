import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';

/**
 * For tests of `workers: N`: requests on fresh connections (the primary hands each connection to
 * the next worker, so a kept-alive client would only ever see one), the workers as the aggregated
 * /metrics lists them, and the built proxy spawned with arguments of our choosing.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection. */
export function onNewConnection(
  url: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one series in Prometheus text (`name{labels}` exactly as printed), NaN when absent. */
export function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

/** Worker slot → pid, from `rap_worker_info`. */
export function workerPids(text: string): Map<string, number> {
  const pids = new Map<string, number>();
  for (const m of text.matchAll(/^rap_worker_info\{worker="(\d+)",pid="(\d+)"\} 1$/gm)) pids.set(m[1]!, Number(m[2]));
  return pids;
}

/** Connections handed to each worker slot, from `rap_worker_connections_total`. */
export function workerConnections(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of text.matchAll(/^rap_worker_connections_total\{worker="(\d+)"\} (\d+)$/gm))
    counts.set(m[1]!, Number(m[2]));
  return counts;
}

export async function scrape(url: string): Promise<string> {
  return (await onNewConnection(`${url}/metrics`)).body;
}

/** The parent pid of `pid`, from /proc. */
export function parentPid(pid: number): number {
  // comm may hold spaces and parentheses: the fields after its closing parenthesis are fixed.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Polls `check` every 100 ms until it holds or `ms` passed; returns whether it held. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // not yet
    }
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface SpawnedProxy {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** For `finally`: SIGKILL to whatever of it still runs (its whole group when detached). */
  kill(): void;
}

/**
 * `bin/registry-auth-proxy.js serve <args>` (built), waiting until `url`/healthz answers. `detached`:
 * in a process group of its own, so that a test can signal the whole group as a terminal does.
 */
export async function spawnBuiltProxy(
  args: string[],
  url: string,
  opts: { detached?: boolean } = {},
): Promise<SpawnedProxy> {
  const child = spawn(process.execPath, [`${ROOT}/bin/registry-auth-proxy.js`, 'serve', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const up = await eventually(async () => child.exitCode !== null || (await fetch(`${url}/healthz`)).ok, 20_000);
  if (!up || child.exitCode !== null) {
    if (opts.detached && child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    else child.kill('SIGKILL');
    throw new Error(`proxy did not start (exit ${child.exitCode}):\n${out}`);
  }
  const kill = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (opts.detached) process.kill(-child.pid!, 'SIGKILL');
    else child.kill('SIGKILL');
  };
  return { child, output: () => out, exited, kill };
}

/** Worker slot → pid once `n` workers are serving (the first one answers /healthz before the others are up). */
export async function servingWorkers(url: string, n: number): Promise<Map<string, number>> {
  let pids = new Map<string, number>();
  if (!(await eventually(async () => (pids = workerPids(await scrape(url))).size === n, 20_000))) {
    throw new Error(`${n} workers did not come up: ${JSON.stringify([...pids])}`);
  }
  return pids;
}
