import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, runBuiltBin, runExecutable, type CliResult } from '../../helpers/cli.js';

/**
 * Issue 17: the kubelet credential provider as a single executable for nodes without Node.js.
 * Builds it once for this file with scripts/build-credential-provider.sh, embedding the Node that
 * runs the suite (so a run on Node 24 proves a Node 24 executable), or takes a prebuilt one from
 * RAP_CREDENTIAL_PROVIDER_EXE (e.g. copied out of the image). Then runs it the way kubelet does,
 * from a directory with no node_modules, with no `node` on PATH, on the kubelet's own request JSON
 * (test/golden/kubelet), and compares every answer with `registry-auth-proxy credential-provider`;
 * and runs its `install` mode (what the installer DaemonSet runs) into a temporary directory.
 */
const exec = promisify(execFile);
const GOLDEN = join(ROOT, 'test/golden/kubelet');
const NAME = 'registry-auth-proxy-credential-provider';

let outDir: string | undefined;
let bare: string;
let built: string;
let exe: string;
let buildSeconds: number | undefined;

beforeAll(async () => {
  bare = mkdtempSync(join(tmpdir(), 'rap-sea-bare-'));
  built = process.env.RAP_CREDENTIAL_PROVIDER_EXE ?? '';
  if (!built) {
    outDir = mkdtempSync(join(tmpdir(), 'rap-sea-build-'));
    const started = Date.now();
    await exec('sh', [join(ROOT, 'scripts/build-credential-provider.sh')], {
      cwd: ROOT,
      env: { ...process.env, SEA_NODE: process.execPath, OUT_DIR: outDir },
      timeout: 180_000,
    });
    buildSeconds = (Date.now() - started) / 1000;
    built = join(outDir, NAME);
  }
  // The node's view: one file in a directory of its own, nothing around it.
  exe = join(bare, 'registry-auth-proxy');
  copyFileSync(built, exe);
  expect(statSync(exe).mode & 0o111).not.toBe(0);
}, 240_000);

afterAll(() => {
  if (buildSeconds !== undefined)
    process.stdout.write(`credential-provider single executable built in ${buildSeconds.toFixed(1)} s\n`);
  for (const d of [outDir, bare]) if (d) rmSync(d, { recursive: true, force: true });
});

/** Runs the executable as kubelet would: absolute path, the config's env only, no `node` anywhere on PATH. */
function runExe(args: string[], stdin: string, env: NodeJS.ProcessEnv = {}, file = exe): Promise<CliResult> {
  return runExecutable(file, args, { stdin, cwd: bare, cleanEnv: true, env: { PATH: '/nonexistent', ...env } });
}

const runCli = (stdin: string, env: NodeJS.ProcessEnv = {}) =>
  runBuiltBin('registry-auth-proxy', ['credential-provider'], { stdin, env, cleanEnv: true });

/** A token like a projected one: the registry's audience, valid for an hour from now. */
function token(): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${part({ alg: 'RS256' })}.${part({ sub: 'system:serviceaccount:team-a:builder', aud: 'registry.example.com', exp })}.c2ln`;
}

/** A Go duration (`59m0s`) in seconds. */
function seconds(d: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(\d+)s$/.exec(d);
  if (!m) throw new Error(`not a Go duration: ${d}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3]);
}

/**
 * The golden fixes the clock; these runs do not. The cache duration is the token's lifetime less a
 * minute's margin less the seconds gone by since it was made: within 30 s of the golden's.
 */
function expectGolden(r: CliResult, goldenFile: string, registry: string, password: string): void {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  const got = JSON.parse(r.stdout);
  const want = JSON.parse(readFileSync(join(GOLDEN, goldenFile), 'utf8'));
  want.auth[registry].password = password;
  const lag = seconds(want.cacheDuration) - seconds(got.cacheDuration);
  expect(lag).toBeGreaterThanOrEqual(0);
  expect(lag).toBeLessThan(30);
  expect({ ...got, cacheDuration: want.cacheDuration }).toEqual(want);
}

describe('kubelet credential provider as a single executable', () => {
  it("node mode: the kubelet's request with `args: [credential-provider]` and RAP_TOKEN_FILE, as the CLI answers", async () => {
    const file = join(bare, 'node-token');
    const jwt = token();
    writeFileSync(file, `${jwt}\n`);
    const request = readFileSync(join(GOLDEN, 'node-request.json'), 'utf8');
    const sea = await runExe(['credential-provider'], request, { RAP_TOKEN_FILE: file });
    const cli = await runCli(request, { RAP_TOKEN_FILE: file });
    expectGolden(sea, 'node-response.json', 'registry.example.com:5000', jwt);
    expectGolden(cli, 'node-response.json', 'registry.example.com:5000', jwt);
  });

  it("service-account mode (KEP-4412): the request's serviceAccountToken, with and without the `credential-provider` argument", async () => {
    const jwt = token();
    const request = JSON.parse(readFileSync(join(GOLDEN, 'sa-request.json'), 'utf8'));
    request.serviceAccountToken = jwt;
    const stdin = JSON.stringify(request);
    for (const args of [[], ['credential-provider']]) {
      expectGolden(await runExe(args, stdin), 'sa-response.json', 'registry.example.com', jwt);
    }
    expectGolden(await runCli(stdin), 'sa-response.json', 'registry.example.com', jwt);
  });

  it.each([
    [
      'missing apiVersion',
      '{"kind":"CredentialProviderRequest","image":"registry.example.com/a"}',
      /^credential-provider: unsupported apiVersion/,
    ],
    ['not JSON', '{"apiVersion":', /^credential-provider: request on stdin is not JSON/],
  ])(
    'a malformed request (%s): exit 1, the reason on stderr, nothing on stdout, as the CLI',
    async (_name, stdin, message) => {
      const sea = await runExe([], stdin);
      expect(sea.code).toBe(1);
      expect(sea.stdout).toBe('');
      expect(sea.stderr).toMatch(message);
      const cli = await runCli(stdin);
      expect({ code: cli.code, stdout: cli.stdout, stderr: cli.stderr }).toEqual(sea);
    },
  );

  it('node mode without a token file fails like the CLI, and a bad option is a usage error (2)', async () => {
    const request = readFileSync(join(GOLDEN, 'node-request.json'), 'utf8');
    const env = { RAP_TOKEN_FILE: join(bare, 'absent') };
    const sea = await runExe([], request, env);
    expect(sea.code).toBe(1);
    expect(sea.stdout).toBe('');
    expect(sea.stderr).toMatch(/no identity token file found/);
    expect(await runCli(request, env)).toEqual(sea);
    expect((await runExe(['--no-such-option'], request)).code).toBe(2);
  });

  it("`install --dir` (the DaemonSet's command) puts it under kubelet's bin dir by rename, once, and it runs from there", async () => {
    const host = join(mkdtempSync(join(tmpdir(), 'rap-sea-host-')), 'kubelet-credential-providers');
    try {
      const target = join(host, 'registry-auth-proxy');
      expect(await runExe(['install', '--dir', host], '')).toEqual({
        code: 0,
        stdout: `installed ${target}\n`,
        stderr: '',
      });
      expect(await runExe(['install', '--dir', host], '')).toEqual({
        code: 0,
        stdout: `${target} is up to date\n`,
        stderr: '',
      });
      expect(readdirSync(host)).toEqual(['registry-auth-proxy']);
      expect(statSync(target).mode & 0o777).toBe(0o755);
      expect(readFileSync(target).equals(readFileSync(exe))).toBe(true);
      const jwt = token();
      const request = {
        ...JSON.parse(readFileSync(join(GOLDEN, 'sa-request.json'), 'utf8')),
        serviceAccountToken: jwt,
      };
      expectGolden(
        await runExe(['credential-provider'], JSON.stringify(request), {}, target),
        'sa-response.json',
        'registry.example.com',
        jwt,
      );
      // another file of the same size there, or the same bytes without the execute bits: replaced
      writeFileSync(target, Buffer.alloc(statSync(target).size));
      expect((await runExe(['install', '--dir', host], '')).stdout).toBe(`installed ${target}\n`);
      chmodSync(target, 0o644);
      expect((await runExe(['install', '--dir', host, '--name', 'registry-auth-proxy'], '')).stdout).toBe(
        `installed ${target}\n`,
      );
      expect(statSync(target).mode & 0o777).toBe(0o755);
      expect(readdirSync(host)).toEqual(['registry-auth-proxy']);
    } finally {
      rmSync(join(host, '..'), { recursive: true, force: true });
    }
  });

  it('`install --wait` stays up after the copy and exits 0 on SIGTERM (a DaemonSet pod)', async () => {
    const host = mkdtempSync(join(tmpdir(), 'rap-sea-wait-'));
    try {
      const child = spawn(exe, ['install', '--dir', host, '--wait'], {
        cwd: bare,
        env: { PATH: '/nonexistent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const said = await new Promise<string>((resolve) =>
        child.stdout.once('data', (d: Buffer) => resolve(d.toString())),
      );
      expect(said).toBe(`installed ${host}/registry-auth-proxy\n`);
      await new Promise((r) => setTimeout(r, 300));
      expect(child.exitCode).toBeNull();
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.on('exit', (code, signal) => resolve([code, signal])),
      );
      child.kill('SIGTERM');
      expect(await exited).toEqual([0, null]);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('`install` refuses under plain node (it would install node itself), and a usage error is 2', async () => {
    const host = mkdtempSync(join(tmpdir(), 'rap-sea-node-'));
    try {
      const script = join(ROOT, 'dist/cli/credential-provider-main.js');
      const underNode = await runExe([script, 'install', '--dir', host], '', {}, process.execPath);
      expect(underNode.code).toBe(1);
      expect(underNode.stdout).toBe('');
      expect(underNode.stderr).toMatch(/^install: only the single executable installs itself/);
      expect(readdirSync(host)).toEqual([]);
      expect((await runExe(['install'], '')).code).toBe(2); // --dir is required
      expect((await runExe(['install', '--dir', host, '--name', '../x'], '')).code).toBe(2);
      expect(readdirSync(host)).toEqual([]);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('carries the credential-provider command only: no proxy, no cloud SDKs in the bundle', () => {
    if (!outDir) return; // a prebuilt executable: nothing to inspect
    const bundle = readFileSync(join(outDir, 'credential-provider.cjs'), 'utf8');
    expect(bundle.length).toBeLessThan(200_000);
    for (const absent of ['http-proxy-3', '@aws-sdk', '@azure/identity', 'google-auth-library', 'pino', 'prom-client'])
      expect(bundle).not.toContain(absent);
    expect(existsSync(join(bare, 'node_modules'))).toBe(false);
  });
});
