import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../fixtures/registry.js';

/**
 * Issue 10, "a globally installed CLI does not work". `npm install -g .` and `npm link` put symlinks
 * to the package's bin/ files on PATH; the working directory is then anywhere. This suite builds
 * that layout itself (a prefix with bin/ symlinks into this checkout) rather than installing from
 * the registry, and runs the commands from a temp directory outside the repository: no ./policies
 * there, so the shipped default policy must be found (and said). `npm pack --dry-run` checks what
 * a published tarball would carry, offline and without running the build again.
 */
const ROOT = realpathSync(fileURLToPath(new URL('../../..', import.meta.url)));
const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let prefix: string;
let cwd: string;
let env: NodeJS.ProcessEnv;

function cmd(command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  prefix = mkdtempSync(join(tmpdir(), 'rap-prefix-'));
  mkdirSync(join(prefix, 'bin'));
  // what npm link / npm install -g <folder> create: <prefix>/bin/<name> -> <package>/<bin path>
  for (const [name, target] of Object.entries(pkg.bin)) symlinkSync(join(ROOT, target), join(prefix, 'bin', name));
  cwd = mkdtempSync(join(tmpdir(), 'rap-elsewhere-'));
  // PATH: the prefix first, then the directory of this node (the shebang says `env node`)
  env = { PATH: `${join(prefix, 'bin')}:${join(process.execPath, '..')}:/usr/bin:/bin`, HOME: cwd };
});

describe('package.json', () => {
  it('declares both commands, a prepare script that builds, and ships bin/, dist/ and policies/', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin).toEqual({
      'registry-auth-proxy': 'bin/registry-auth-proxy.js',
      'docker-credential-registry-auth-proxy': 'bin/docker-credential-registry-auth-proxy.js',
    });
    expect(pkg.scripts.prepare).toMatch(/npm run build/);
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      timeout: 60_000,
    });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of [
      'bin/registry-auth-proxy.js',
      'bin/docker-credential-registry-auth-proxy.js',
      'bin/load-entry.js',
      'dist/cli/main.js',
      'dist/clients/docker-credential-helper.js',
      'policies/default.yaml',
      'policies/dev/dev.yaml',
    ]) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
  });
});

describe('both commands on PATH, run from a directory outside the repository', () => {
  it('registry-auth-proxy --help and serve --help', async () => {
    const help = await cmd('registry-auth-proxy', ['--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: registry-auth-proxy/);
    for (const c of ['serve', 'verify', 'policy', 'keys', 'credential-provider', 'login', 'controller'])
      expect(help.stdout).toContain(c);
    const serve = await cmd('registry-auth-proxy', ['serve', '--help']);
    expect(serve.code).toBe(0);
    for (const flag of ['--issuer-name <name>', '--ca-file <file>', '--policy <path>'])
      expect(serve.stdout).toContain(flag);
    expect(serve.stdout).toMatch(/shipped\s+policies\/default\.yaml/);
  });

  it('docker-credential-registry-auth-proxy answers list and version', async () => {
    expect(await cmd('docker-credential-registry-auth-proxy', ['list'])).toEqual({
      code: 0,
      stdout: '{}\n',
      stderr: '',
    });
    const v = await cmd('docker-credential-registry-auth-proxy', ['version']);
    expect(v.stdout).toMatch(/^docker-credential-registry-auth-proxy \(registry-auth-proxy\) \d/);
  });

  it('policy test uses the shipped default policy when there is no ./policies', async () => {
    writeFileSync(
      join(cwd, 'claims.json'),
      JSON.stringify({
        sub: 'system:serviceaccount:team-a:builder',
        'kubernetes.io': { namespace: 'team-a', serviceaccount: { name: 'builder' } },
      }),
    );
    const ok = await cmd('registry-auth-proxy', [
      'policy',
      'test',
      '--claims',
      'claims.json',
      '--preset',
      'kubernetes',
      '--scope',
      'repository:team-a/app:pull,push',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).decisions[0].matched[0]).toMatchObject({
      name: 'namespace-owns-its-prefix',
      file: join(ROOT, 'policies', 'default.yaml'),
    });
    const denied = await cmd('registry-auth-proxy', [
      'policy',
      'test',
      '--claims',
      'claims.json',
      '--preset',
      'kubernetes',
      '--scope',
      'repository:team-b/app:pull',
    ]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('denied  repository:team-b/app:pull: no rule matched');
  });

  it('serve without an issuer exits 2 with the ways out, before listening', async () => {
    const port = await freePort();
    const r = await cmd('registry-auth-proxy', ['--listen', `127.0.0.1:${port}`, '--upstream', 'http://127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^config error: <flags>: issuers: no identity issuer is configured, so no client could ever get a token\. Give one: --issuer <url> --audience <aud>/,
    );
    expect(r.stderr).toContain('--dev');
    expect(
      await fetch(`http://127.0.0.1:${port}/healthz`).then(
        () => 'listening',
        () => 'not listening',
      ),
    ).toBe('not listening');
  });

  describe('serve with a flag-only issuer', () => {
    let child: ChildProcess | undefined;
    afterAll(() => {
      child?.kill('SIGTERM');
    });

    it('starts, names the issuer --issuer-name says, and logs the shipped default policy it uses', async () => {
      const port = await freePort();
      // nothing listens on :9 — the issuer's keys stay unloaded; start-up does not depend on them
      child = spawn(
        'registry-auth-proxy',
        [
          '--listen',
          `127.0.0.1:${port}`,
          '--upstream',
          'http://127.0.0.1:9',
          '--issuer',
          'http://127.0.0.1:9',
          '--issuer-name',
          'corp',
          '--audience',
          'registry.test',
        ],
        { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 20_000;
      while (!out.includes('registry-auth-proxy listening')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const lines = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const policyLine = lines.find(
        (l) =>
          typeof l.msg === 'string' &&
          l.msg.startsWith('no policy configured and no ./policies here: using the shipped default policy'),
      );
      expect(policyLine?.policies).toBe(join(ROOT, 'policies', 'default.yaml'));
      expect(lines.find((l) => l.msg === 'registry-auth-proxy listening')).toMatchObject({
        issuers: ['corp'],
        rules: 2,
      });
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
    });
  });
});

describe('a checkout linked before `npm ci` (no dist/)', () => {
  it('says how to fix it instead of a module stack trace', async () => {
    const pkg = mkdtempSync(join(tmpdir(), 'rap-nodist-'));
    mkdirSync(join(pkg, 'bin'));
    for (const f of ['registry-auth-proxy.js', 'docker-credential-registry-auth-proxy.js', 'load-entry.js'])
      copyFileSync(join(ROOT, 'bin', f), join(pkg, 'bin', f));
    writeFileSync(join(pkg, 'package.json'), '{"type": "module"}');
    for (const bin of ['registry-auth-proxy.js', 'docker-credential-registry-auth-proxy.js']) {
      const r = await cmd(process.execPath, [join(pkg, 'bin', bin), '--help']);
      expect(r.code, bin).toBe(1);
      expect(r.stderr).toMatch(/cannot start: Cannot find module .*dist/);
      expect(r.stderr).toContain(
        `run \`npm ci\` in ${pkg}/ first (it installs the dependencies and builds dist/), then \`npm install -g .\` or \`npm link\``,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
