import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../helpers/cli.js';
import { eventually, parentPid, servingWorkers } from '../../support/cluster.js';
import { freePort } from '../../support/net.js';
import { cmdline, environ, listenerPid } from '../../support/proc.js';
import { STREAMING_HEAP_FLAG, STREAMING_MALLOC_ENV, STREAMING_SETTINGS_ENV } from '../../../src/server/heap-flags.js';

/**
 * Issue 19: every way of starting a serving process streams with the settings of
 * src/server/heap-flags.ts, read from the kernel (/proc/<pid>/cmdline and environ) of the process
 * that holds the listening socket — whatever started it. An operator's own choice wins; other
 * commands stay one process; signals and exit codes pass through the launcher.
 */

const BIN = join(ROOT, 'bin', 'registry-auth-proxy.js');
const TRIM = STREAMING_MALLOC_ENV.MALLOC_TRIM_THRESHOLD_;
/** Node >= 22.15 re-executes in place (same pid); older ones supervise one child. */
const IN_PLACE = typeof (process as { execve?: unknown }).execve === 'function';

let work: string;
let policy: string;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'launch.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  work = mkdtempSync(join(tmpdir(), 'rap-startup-'));
  policy = join(work, 'policy.yaml');
  writeFileSync(policy, "rules: [{name: all, actions: [pull], when: 'true'}]\n");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A config listening on a free loopback port; the upstream is never reached. */
async function config(extra = ''): Promise<{ file: string; port: number }> {
  const port = await freePort();
  const file = join(work, `rap-${port}.yaml`);
  writeFileSync(
    file,
    `listen: 127.0.0.1:${port}\nupstream: {url: 'http://127.0.0.1:9'}\npolicies: ${policy}\nanonymous: true\nlogLevel: info\n${extra}`,
  );
  return { file, port };
}

interface Started {
  child: ChildProcess;
  port: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The process serving the port. */
  serving(): number;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `command` in a process group of its own (so npm, sh and node all go at the end) and waits for /healthz. */
async function start(
  command: string,
  args: string[],
  port: number,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Started> {
  const child = spawn(command, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const up = await eventually(
    async () => child.exitCode !== null || (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
    120_000,
  );
  if (!up || child.exitCode !== null) {
    kill(child);
    throw new Error(`${command} ${args.join(' ')} did not start (exit ${child.exitCode}):\n${out}`);
  }
  return {
    child,
    port,
    output: () => out,
    exited,
    serving: () => listenerPid(port),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, signal);
      const timer = setTimeout(() => kill(child), 20_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

function kill(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // gone
  }
}

/** The serving process runs with both settings. */
function expectSettings(pid: number): void {
  const argv = cmdline(pid);
  expect(argv).toContain(STREAMING_HEAP_FLAG);
  expect(argv.indexOf(STREAMING_HEAP_FLAG)).toBeLessThan(
    argv.findIndex((a) => a.endsWith('registry-auth-proxy.js') || a.endsWith('/registry-auth-proxy')),
  );
  expect(environ(pid).MALLOC_TRIM_THRESHOLD_).toBe(TRIM);
}

describe('every entry point serves with the streaming settings', () => {
  it('node bin/registry-auth-proxy.js serve: in place on Node >= 22.15, else one supervised child', async () => {
    const { file, port } = await config();
    const proxy = await start(process.execPath, [BIN, 'serve', '--config', file], port);
    try {
      const pid = proxy.serving();
      expectSettings(pid);
      expect(environ(pid)[STREAMING_SETTINGS_ENV]).toBe('applied');
      if (IN_PLACE) expect(pid).toBe(proxy.child.pid);
      else expect(parentPid(pid)).toBe(proxy.child.pid);
    } finally {
      expect(await proxy.stop()).toEqual({ code: 0, signal: null });
    }
  });

  it('the installed command, as a systemd unit runs it: from PATH, a bare environment, stdin /dev/null', async () => {
    const prefix = join(work, 'prefix');
    mkdirSync(join(prefix, 'bin'), { recursive: true });
    // what npm install -g <folder> creates: <prefix>/bin/<name> -> <package>/<bin path>
    if (!existsSync(join(prefix, 'bin', 'registry-auth-proxy')))
      symlinkSync(BIN, join(prefix, 'bin', 'registry-auth-proxy'));
    const { file, port } = await config();
    const env = { PATH: `${join(prefix, 'bin')}:${join(process.execPath, '..')}:/usr/bin:/bin` };
    const proxy = await start('registry-auth-proxy', ['--config', file], port, { env, cwd: work });
    try {
      expectSettings(proxy.serving());
    } finally {
      expect((await proxy.stop()).code).toBe(0);
    }
  });

  it('npm start', async () => {
    const { file, port } = await config();
    const proxy = await start('npm', ['start', '--', '--config', file], port);
    try {
      expectSettings(proxy.serving());
    } finally {
      await proxy.stop();
    }
  }, 60_000);

  it('npm run dev (with a config: no embedded registry), without rebuilding an up-to-date dist/', async () => {
    const { file, port } = await config();
    const proxy = await start(
      'npm',
      ['run', 'dev', '--', '--config', file, '--state-dir', join(work, 'dev-state')],
      port,
    );
    try {
      expectSettings(proxy.serving());
      expect(proxy.output()).not.toMatch(/tsc -p tsconfig\.build\.json/);
    } finally {
      await proxy.stop();
    }
  }, 150_000);

  it('workers: 2 — each worker the primary forks', async () => {
    const { file, port } = await config();
    const proxy = await start(process.execPath, [BIN, '--config', file, '--workers', '2'], port);
    try {
      const workers = [...(await servingWorkers(`http://127.0.0.1:${port}`, 2)).values()];
      for (const pid of workers) {
        expectSettings(pid);
        expect(parentPid(pid)).toBe(proxy.serving());
      }
    } finally {
      expect((await proxy.stop()).code).toBe(0);
    }
  });
});

describe("an operator's own choice wins", () => {
  it.each([
    [
      'their heap size and malloc tuning: started as they are, no re-exec',
      ['--initial-old-space-size=128'],
      { MALLOC_ARENA_MAX: '2' },
      false,
      false,
    ],
    [
      'their malloc tuning only: the heap flag is added',
      [],
      { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' },
      true,
      false,
    ],
    ['their heap size only: the malloc setting is added', ['--initial-old-space-size=128'], {}, false, true],
    [
      `opted out (${STREAMING_SETTINGS_ENV}=off): exactly as started`,
      [],
      { [STREAMING_SETTINGS_ENV]: 'off' },
      false,
      false,
    ],
  ])('%s', async (_name, nodeArgs, env: NodeJS.ProcessEnv, flagAdded, mallocAdded) => {
    const { file, port } = await config();
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_') && k !== 'GLIBC_TUNABLES'),
    );
    const proxy = await start(process.execPath, [...nodeArgs, BIN, '--config', file], port, {
      env: { ...clean, ...env },
    });
    try {
      const pid = proxy.serving();
      const argv = cmdline(pid);
      expect(argv.includes(STREAMING_HEAP_FLAG)).toBe(flagAdded);
      for (const a of nodeArgs) expect(argv).toContain(a);
      expect(environ(pid).MALLOC_TRIM_THRESHOLD_).toBe(mallocAdded ? TRIM : undefined);
      for (const [k, v] of Object.entries(env)) expect(environ(pid)[k]).toBe(v);
      if (!flagAdded && !mallocAdded) expect(pid).toBe(proxy.child.pid);
    } finally {
      expect((await proxy.stop()).code).toBe(0);
    }
  });
});

describe('the launcher', () => {
  /** Every Node process started records its pid and flags (NODE_OPTIONS reaches a re-executed or spawned one too). */
  function recorder(): { env: NodeJS.ProcessEnv; starts(): { pid: number; execArgv: string[] }[] } {
    const dir = mkdtempSync(join(work, 'rec-'));
    writeFileSync(
      join(dir, 'record.cjs'),
      `require('node:fs').appendFileSync(${JSON.stringify(join(dir, 'starts'))}, JSON.stringify({ pid: process.pid, execArgv: process.execArgv }) + '\\n');\n`,
    );
    return {
      env: { ...process.env, NODE_OPTIONS: `--require ${join(dir, 'record.cjs')}` },
      starts: () =>
        readFileSync(join(dir, 'starts'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { pid: number; execArgv: string[] }),
    };
  }

  it.each([[['--version']], [['verify', 'not-a-token']], [['policy', '--help']], [['serve', '--help']]])(
    'leaves %j one process, started once',
    async (args) => {
      const rec = recorder();
      const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env: rec.env, stdio: 'ignore' });
      await new Promise((r) => child.once('exit', r));
      expect(rec.starts()).toHaveLength(1);
      expect(rec.starts()[0]!.execArgv).not.toContain(STREAMING_HEAP_FLAG);
    },
  );

  it('starts the serving process once more, never again (the marker), with the settings', async () => {
    const rec = recorder();
    const { file, port } = await config();
    const proxy = await start(process.execPath, [BIN, '--config', file], port, { env: rec.env });
    try {
      const starts = rec.starts();
      expect(starts).toHaveLength(2);
      expect(starts[1]!.execArgv).toContain(STREAMING_HEAP_FLAG);
      expect(starts[1]!.pid).toBe(proxy.serving());
    } finally {
      await proxy.stop();
    }
  });

  it('passes the exit code through: a config error is 2', async () => {
    const child = spawn(process.execPath, [BIN, '--config', join(work, 'absent.yaml')], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/config error: .*absent\.yaml/);
  });

  it('Ctrl-C to the group (launcher and server both get it): one drain, exit 0', async () => {
    const { file, port } = await config();
    const proxy = await start(process.execPath, [BIN, '--config', file], port);
    expect(await proxy.stop('SIGINT')).toEqual({ code: 0, signal: null });
    expect(proxy.output().match(/shutting down: finishing in-flight requests/g)).toHaveLength(1);
    expect(proxy.output()).toMatch(/"msg":"stopped"/);
  });

  it('SIGTERM to the launched process alone reaches the server, which drains; SIGHUP kills both, by that signal', async () => {
    const { file, port } = await config();
    const term = await start(process.execPath, [BIN, '--config', file], port);
    term.child.kill('SIGTERM');
    expect(await term.exited).toEqual({ code: 0, signal: null });
    expect(term.output()).toMatch(/"signal":"SIGTERM","msg":"shutting down/);
    const second = await config();
    const hup = await start(process.execPath, [BIN, '--config', second.file], second.port);
    const server = hup.serving();
    hup.child.kill('SIGHUP');
    expect(await hup.exited).toEqual({ code: null, signal: 'SIGHUP' });
    expect(await eventually(() => !existsSync(`/proc/${server}`), 5_000)).toBe(true);
  });
});
