import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { base64url } from 'jose';
import { buildOciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';
import { ROOT, runBuiltBin, type CliResult } from '../../helpers/cli.js';

/**
 * The docker-credential-helpers protocol as Docker, podman, skopeo and buildah speak it (their
 * `client` package reads stdout: the answer, or on exit 1 the error message, with "credentials not
 * found in native keychain" and "no credentials server URL" recognised by their exact text), run
 * through the built `bin/` entry point. `store` and `erase` succeed without storing anything, so
 * `podman login`/`logout` (and `docker login`/`logout`) work with the helper configured.
 */
const BIN = join(ROOT, 'bin', 'docker-credential-registry-auth-proxy.js');
const run = promisify(execFile);

function helper(args: string[], stdin: string, env: NodeJS.ProcessEnv): Promise<CliResult> {
  // A clean environment: only what the test sets (RAP_REGISTRIES, RAP_TOKEN_FILE) reaches the helper.
  return runBuiltBin('docker-credential-registry-auth-proxy', args, { cleanEnv: true, timeoutMs: 20_000, stdin, env });
}

const now = Math.floor(Date.now() / 1000);
const jwt = (claims: Record<string, unknown>) =>
  `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'k' }))}.${base64url.encode(JSON.stringify({ exp: now + 3600, ...claims }))}.c2ln`;
const TOKEN = jwt({ iss: 'https://ci.test', sub: 'job-1', aud: 'registry.test' });
const API_TOKEN = jwt({
  iss: 'https://kubernetes.default.svc.cluster.local',
  aud: ['https://kubernetes.default.svc.cluster.local'],
  'kubernetes.io': { namespace: 'a' },
});

let dir: string;
let tokenFile: string;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'clients', 'docker-credential-helper.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'rap-helper-proto-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});

describe('get', () => {
  it('answers a configured registry with ServerURL, Username and the token, on stdout', async () => {
    const r = await helper(['get'], 'https://registry.example.com\n', {
      RAP_TOKEN_FILE: tokenFile,
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ServerURL: 'https://registry.example.com',
      Username: 'registry-auth-proxy',
      Secret: TOKEN,
    });
    expect(r.stderr).toBe('');
  });

  it('answers any other registry with exactly the protocol\'s "not found" (exit 1), so clients go on anonymously', async () => {
    const r = await helper(['get'], 'https://index.docker.io/v1/', {
      RAP_TOKEN_FILE: tokenFile,
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(r).toEqual({ code: 1, stdout: 'credentials not found in native keychain\n', stderr: '' });
  });

  it('puts its errors on stdout (exit 1), where clients read them, and on stderr (Docker 28 shows only that): no token file, an API-server token, no server URL', async () => {
    const missing = await helper(['get'], 'registry.example.com', {
      RAP_TOKEN_FILE: join(dir, 'nope'),
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/^no identity token file found \(looked at .*nope/);
    expect(missing.stderr).toBe(`docker-credential-registry-auth-proxy: ${missing.stdout}`);

    const apiFile = join(dir, 'api-token');
    writeFileSync(apiFile, API_TOKEN);
    const api = await helper(['get'], 'registry.example.com', {
      RAP_TOKEN_FILE: apiFile,
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(api.code).toBe(1);
    expect(api.stdout).toMatch(/^refusing to hand out the token from .*api-token: .*Kubernetes API/);
    expect(api.stdout + api.stderr).not.toContain(API_TOKEN);

    const empty = await helper(['get'], '\n', { RAP_TOKEN_FILE: tokenFile, RAP_REGISTRIES: 'registry.example.com' });
    expect(empty).toEqual({ code: 1, stdout: 'no credentials server URL\n', stderr: '' });
  });
});

describe('store, erase, list, version', () => {
  it('store reads and discards the credentials (exit 0, nothing on stdout, the secret never echoed) and says so on stderr', async () => {
    const input = JSON.stringify({
      ServerURL: 'registry.example.com',
      Username: '<token>',
      Secret: 'refresh-token-secret',
    });
    const ours = await helper(['store'], input, { RAP_TOKEN_FILE: tokenFile, RAP_REGISTRIES: 'registry.example.com' });
    expect(ours.code).toBe(0);
    expect(ours.stdout).toBe('');
    expect(ours.stderr).toBe(
      `docker-credential-registry-auth-proxy: nothing stored: registry.example.com gets the identity token from ${tokenFile} on every pull and push\n`,
    );
    // credsStore sends docker.io logins here too: say they are dropped
    const foreign = await helper(
      ['store'],
      JSON.stringify({ ServerURL: 'https://index.docker.io/v1/', Username: 'me', Secret: 'hunter2' }),
      {
        RAP_REGISTRIES: 'registry.example.com',
      },
    );
    expect(foreign.code).toBe(0);
    expect(foreign.stderr).toMatch(/nothing stored: .*index\.docker\.io is not in RAP_REGISTRIES, so it gets none/);
    for (const r of [ours, foreign]) expect(r.stdout + r.stderr).not.toMatch(/refresh-token-secret|hunter2/);
    // not even valid JSON is an error: nothing is kept either way
    expect((await helper(['store'], 'garbage', {})).code).toBe(0);
  });

  it('erase succeeds (podman 4.3.1 crashes in logout when it fails)', async () => {
    const r = await helper(['erase'], 'registry.example.com\n', {
      RAP_TOKEN_FILE: tokenFile,
      RAP_REGISTRIES: 'registry.example.com',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/nothing to erase/);
  });

  it('list names the configured registries, or is {} without RAP_REGISTRIES', async () => {
    const l = await helper(['list'], '', { RAP_REGISTRIES: 'registry.example.com, https://mirror.example.com:5000/' });
    expect(l.code).toBe(0);
    expect(JSON.parse(l.stdout)).toEqual({
      'registry.example.com': 'registry-auth-proxy',
      'mirror.example.com:5000': 'registry-auth-proxy',
    });
    const none = await helper(['list'], '', {});
    expect(none).toEqual({ code: 0, stdout: '{}\n', stderr: '' });
  });

  it('version answers; an unknown action is an error on stdout with exit 1', async () => {
    const v = await helper(['version'], '', {});
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^docker-credential-registry-auth-proxy \(registry-auth-proxy\) \d+\.\d+\.\d+/);
    const bad = await helper(['bogus'], '', {});
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/Usage: docker-credential-registry-auth-proxy <get\|store\|erase\|list\|version>/);
  });
});

describe('real clients with the helper configured (credHelpers)', () => {
  let stack: RegistryAndProxy;
  let proxy: TestProxy;
  let binDir: string;

  beforeAll(async () => {
    stack = await startRegistryAndProxy();
    proxy = stack.proxy;
    // what `npm install -g` puts on PATH: the helper under its protocol name
    binDir = join(dir, 'bin');
    mkdirSync(binDir, { recursive: true });
    writeFileSync(
      join(binDir, 'docker-credential-registry-auth-proxy'),
      `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`,
    );
    chmodSync(join(binDir, 'docker-credential-registry-auth-proxy'), 0o755);
  });
  afterAll(() => stack?.stop());

  it('podman login and logout succeed and keep nothing; pushes still get the identity token from the helper', async () => {
    const podman = requireTool('podman');
    const identity = await proxy.mintIdentity();
    writeFileSync(tokenFile, identity);
    const authFile = join(dir, 'podman-auth.json');
    writeFileSync(authFile, JSON.stringify({ credHelpers: { [proxy.host]: 'registry-auth-proxy' } }));
    const env = {
      ...process.env,
      PATH: `${binDir}:${process.env.PATH}`,
      RAP_TOKEN_FILE: tokenFile,
      RAP_REGISTRIES: proxy.host,
    };
    // private storage: podman initialises its store even for login, and other suites run podman too
    const global = [
      '--root',
      join(dir, 'podman-root'),
      '--runroot',
      join(dir, 'podman-run'),
      '--storage-driver',
      'vfs',
    ];
    const login = await new Promise<CliResult>((resolve) => {
      const child = spawn(
        podman,
        [
          ...global,
          'login',
          '--authfile',
          authFile,
          '--tls-verify=false',
          '-u',
          'anyone',
          '--password-stdin',
          proxy.host,
        ],
        { env },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(identity);
    });
    // podman 4.3 prints: "Login Succeeded!" (stderr carries the helper's note)
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain('Login Succeeded!');
    expect(login.stderr).toContain('docker-credential-registry-auth-proxy: nothing stored');
    const afterLogin = readFileSync(authFile, 'utf8');
    expect(afterLogin).not.toContain(identity);
    expect(afterLogin).not.toContain(Buffer.from(`anyone:${identity}`).toString('base64'));

    // skopeo, the same containers/image client, pushes and lists with the token from the helper's `get`
    const skopeo = requireTool('skopeo');
    const image = buildOciImage(join(dir, 'img'), { layers: 1 });
    await run(
      skopeo,
      [
        'copy',
        '--dest-tls-verify=false',
        '--authfile',
        authFile,
        image.ref,
        `docker://${proxy.host}/team-a/helper-login:v1`,
      ],
      {
        env,
        timeout: 60_000,
      },
    );
    const tags = await run(
      skopeo,
      ['list-tags', '--tls-verify=false', '--authfile', authFile, `docker://${proxy.host}/team-a/helper-login`],
      {
        env,
        timeout: 60_000,
      },
    );
    expect(JSON.parse(tags.stdout).Tags).toEqual(['v1']);

    const logout = await run(podman, [...global, 'logout', '--authfile', authFile, proxy.host], {
      env,
      timeout: 60_000,
    });
    // podman 4.3 prints: "Removed login credentials for <host>"
    expect(logout.stdout).toContain(`Removed login credentials for ${proxy.host}`);
    expect(JSON.parse(readFileSync(authFile, 'utf8')).credHelpers).toEqual({ [proxy.host]: 'registry-auth-proxy' });
  }, 120_000);
});
