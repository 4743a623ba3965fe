import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { parse as parseYaml } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { devBanner, cliInvocation, shellQuote } from '../../../src/dev/banner.js';
import { DEV_LISTEN, DEV_POLICY_PATH } from '../../../src/config/defaults.js';
import bcrypt from 'bcryptjs';
import { devStateDir, stateDirProblem } from '../../../src/dev/defaults.js';
import { buildDemoImage, goArch } from '../../../src/dev/demo-image.js';
import { registryBinaryPlan } from '../../../src/dev/registry-binary.js';
import { htpasswdLine, registryConfig, registryEnv, registryIdentity } from '../../../src/dev/registry.js';

describe('dev state directory', () => {
  it.each([
    ['flag wins', './here', { RAP_DEV_STATE_DIR: '/env', XDG_STATE_HOME: '/xdg' }, `${process.cwd()}/here`],
    ['then RAP_DEV_STATE_DIR', undefined, { RAP_DEV_STATE_DIR: '/env', XDG_STATE_HOME: '/xdg' }, '/env'],
    ['then XDG_STATE_HOME', undefined, { XDG_STATE_HOME: '/xdg' }, '/xdg/registry-auth-proxy/dev'],
    [
      'a relative XDG_STATE_HOME is ignored (XDG spec)',
      undefined,
      { XDG_STATE_HOME: 'rel' },
      '/home/u/.local/state/registry-auth-proxy/dev',
    ],
    ['else ~/.local/state', undefined, {}, '/home/u/.local/state/registry-auth-proxy/dev'],
  ])('%s', (_name, flag, env, want) => {
    expect(devStateDir(flag, env, '/home/u')).toBe(want);
  });

  const dir = { isDirectory: true };
  it.each([
    ['ours, 0700', { ...dir, uid: 1000, mode: 0o40700 }, undefined],
    ['ours, 0755: others may read, not write', { ...dir, uid: 1000, mode: 0o40755 }, undefined],
    [
      'group-writable',
      { ...dir, uid: 1000, mode: 0o40770 },
      'the state directory /s is writable by others (mode 770): chmod 700 /s',
    ],
    [
      'world-writable',
      { ...dir, uid: 1000, mode: 0o40777 },
      'the state directory /s is writable by others (mode 777): chmod 700 /s',
    ],
    [
      'sticky /tmp-like',
      { ...dir, uid: 1000, mode: 0o41777 },
      'the state directory /s is writable by others (mode 777): chmod 700 /s',
    ],
    [
      'another user owns it',
      { ...dir, uid: 0, mode: 0o40700 },
      'the state directory /s belongs to uid 0, not to you (uid 1000): use a directory of your own (--state-dir)',
    ],
    [
      'not a directory',
      { isDirectory: false, uid: 1000, mode: 0o100600 },
      'the state directory /s is not a directory: remove it or choose another with --state-dir',
    ],
  ])('state directory check: %s', (_name, st, want) => {
    expect(stateDirProblem('/s', st, 1000)).toBe(want);
  });
});

describe('--dev config precedence: flags > file > dev defaults', () => {
  it('dev defaults fill what neither flags nor file give; no upstream means embedded', () => {
    const c = buildConfig({}, { dev: true });
    expect(`${c.listen.host}:${c.listen.port}`).toBe(DEV_LISTEN);
    expect(c.policies).toBe(DEV_POLICY_PATH);
    expect(c.upstreams).toEqual([]);
    expect(c.publicURL).toBe('http://127.0.0.1:8080');
  });
  it('the file wins over dev defaults', () => {
    const c = buildConfig(
      { listen: '127.0.0.1:9999', upstream: { url: 'http://127.0.0.1:5001' }, policies: '/p' },
      { dev: true },
      'f.yaml',
      {
        RAP_UPSTREAM: 'http://127.0.0.1:7000',
      },
    );
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(c.upstreams[0]?.url).toBe('http://127.0.0.1:5001');
    expect(c.policies).toBe('/p');
  });
  it('flags win over the file', () => {
    const c = buildConfig(
      { listen: '127.0.0.1:9999', upstream: { url: 'http://127.0.0.1:5001' }, policies: '/p' },
      { dev: true, listen: '127.0.0.1:1234', upstream: 'http://127.0.0.1:5002', policy: '/q' },
    );
    expect(c.listen.port).toBe(1234);
    expect(c.upstreams[0]?.url).toBe('http://127.0.0.1:5002');
    expect(c.policies).toBe('/q');
  });
  it('RAP_UPSTREAM is the dev upstream when neither flag nor file names one, and only with --dev', () => {
    expect(buildConfig({}, { dev: true }, undefined, { RAP_UPSTREAM: 'http://127.0.0.1:7000' }).upstreams[0]?.url).toBe(
      'http://127.0.0.1:7000',
    );
    expect(buildConfig({}, {}, undefined, { RAP_UPSTREAM: 'http://127.0.0.1:7000' }).upstreams).toEqual([]);
    expect(() => buildConfig({}, { dev: true }, undefined, { RAP_UPSTREAM: 'http://127.0.0.1:7000/v2/' })).toThrow(
      /RAP_UPSTREAM/,
    );
  });
  it('without --dev the defaults are unchanged', () => {
    expect(buildConfig({}, {}).listen).toEqual({ host: '0.0.0.0', port: 8080 });
  });
});

describe('embedded registry', () => {
  it("config: loopback only, storage in the state dir, deletes on, htpasswd auth, this run's nonce on every answer", () => {
    const doc = parseYaml(
      registryConfig({
        port: 4321,
        dataDir: "/s/reg 'x'",
        secret: 's3',
        htpasswd: '/s/registry.htpasswd',
        nonce: 'n0nce',
      }),
    );
    expect(doc.http).toEqual({ addr: '127.0.0.1:4321', secret: 's3', headers: { 'x-rap-dev': ['n0nce'] } });
    expect(doc.storage.filesystem.rootdirectory).toBe("/s/reg 'x'");
    expect(doc.storage.delete.enabled).toBe(true);
    expect(doc.auth).toEqual({ htpasswd: { realm: 'registry-auth-proxy --dev', path: '/s/registry.htpasswd' } });
  });

  it('htpasswd: one bcrypt line that matches the password and no other', () => {
    const line = htpasswdLine('registry-auth-proxy', 'p4ss');
    expect(line).toMatch(/^registry-auth-proxy:\$2[aby]\$04\$[./A-Za-z0-9]{53}\n$/);
    const hash = line.trim().split(':')[1]!;
    expect(bcrypt.compareSync('p4ss', hash)).toBe(true);
    expect(bcrypt.compareSync('p4sS', hash)).toBe(false);
  });

  it.each([
    ['ours: 401 to no credentials, with the nonce', 401, 'n0nce', 'ours'],
    ['another process without the header', 200, null, 'other'],
    ['another registry without auth', 200, 'n0nce', 'other'],
    ['a wrong nonce (an earlier run)', 401, 'old', 'other'],
    ['a 401 without the nonce', 401, null, 'other'],
  ] as const)('who answers on the port: %s', (_name, status, header, want) => {
    expect(registryIdentity(status, header, 'n0nce')).toBe(want);
  });
  it.each([
    [
      'explicit and usable',
      { explicit: '/r', explicitUsable: true, found: '/usr/bin/docker-registry', isRoot: true, hasAptGet: true },
      { action: 'use', path: '/r' },
    ],
    [
      'explicit but missing: never silently another',
      { explicit: '/r', explicitUsable: false, found: '/usr/bin/docker-registry', isRoot: true, hasAptGet: true },
      { action: 'fail' },
    ],
    [
      'on PATH',
      { found: '/usr/bin/docker-registry', isRoot: false, hasAptGet: false },
      { action: 'use', path: '/usr/bin/docker-registry' },
    ],
    [
      'missing, root with apt-get: install',
      { isRoot: true, hasAptGet: true },
      { action: 'install', command: ['apt-get', 'install', '-y', '--no-install-recommends', 'docker-registry'] },
    ],
  ] as const)('binary: %s', (_name, s, want) => {
    expect(registryBinaryPlan(s)).toMatchObject(want);
  });
  it("passes none of the caller's REGISTRY_* variables: Distribution would read them as config", () => {
    expect(registryEnv({ PATH: '/bin', REGISTRY_AUTH_FILE: '/x/auth.json', REGISTRY_HTTP_ADDR: ':5000' })).toEqual({
      PATH: '/bin',
    });
  });
  it('binary missing and not root: the exact install command', () => {
    const plan = registryBinaryPlan({ isRoot: false, hasAptGet: true });
    expect(plan.action).toBe('fail');
    expect(plan.action === 'fail' && plan.message).toContain('sudo apt-get install -y docker-registry');
    const noApt = registryBinaryPlan({ isRoot: true, hasAptGet: false });
    expect(noApt.action === 'fail' && noApt.message).toContain('RAP_DEV_REGISTRY');
  });
});

describe('demo image', () => {
  it('is deterministic, and its digests, sizes and diff_id match its blobs', async () => {
    const a = await buildDemoImage('amd64');
    const b = await buildDemoImage('amd64');
    expect(a.manifest.equals(b.manifest)).toBe(true);
    const sha = (x: Buffer) => `sha256:${createHash('sha256').update(x).digest('hex')}`;
    const m = JSON.parse(a.manifest.toString());
    const [config, layer] = a.blobs;
    expect(m.config).toMatchObject({ digest: sha(config!.data), size: config!.data.length });
    expect(m.layers[0]).toMatchObject({ digest: sha(layer!.data), size: layer!.data.length });
    const tar = gunzipSync(layer!.data);
    expect(JSON.parse(config!.data.toString()).rootfs.diff_ids).toEqual([sha(tar)]);
    expect(tar.subarray(0, 9).toString()).toBe('hello.txt');
  });
  it('names the platform as Go does', () => {
    expect(goArch('x64')).toBe('amd64');
    expect(goArch('arm64')).toBe('arm64');
  });
});

describe('banner', () => {
  const base = {
    tokenFile: '/s/token',
    subject: 'developer',
    expiresAt: 0,
    upstream: 'http://127.0.0.1:5555',
    cli: 'registry-auth-proxy',
    verifyArgs: [],
  };
  it('plain HTTP on loopback: podman and skopeo skip TLS, the token is read from the file', () => {
    const text = devBanner({
      ...base,
      publicURL: 'http://127.0.0.1:8080',
      demoRef: 'demo/hello:latest',
      embeddedData: '/s/registry',
    });
    expect(text).toContain('docker login 127.0.0.1:8080 -u dev --password-stdin < /s/token');
    expect(text).toContain('podman login --tls-verify=false 127.0.0.1:8080 -u dev --password-stdin < /s/token');
    expect(text).toContain(
      'skopeo copy --src-tls-verify=false --dest-tls-verify=false docker://127.0.0.1:8080/demo/hello:latest docker://127.0.0.1:8080/demo/copy:latest',
    );
    expect(text).toContain('registry-auth-proxy verify --dev - < /s/token');
    expect(text).not.toContain('insecure-registries');
  });
  it('HTTPS: no TLS switches; a path with a space is quoted', () => {
    const text = devBanner({
      ...base,
      tokenFile: '/my state/token',
      publicURL: 'https://reg.example',
      verifyArgs: ['--state-dir', '/my state'],
    });
    expect(text).not.toContain('tls-verify');
    expect(text).toContain("docker login reg.example -u dev --password-stdin < '/my state/token'");
    expect(text).toContain("verify --dev --state-dir '/my state' - < '/my state/token'");
  });
  it('plain HTTP elsewhere than loopback: says Docker needs insecure-registries', () => {
    expect(devBanner({ ...base, publicURL: 'http://10.0.0.5:8080' })).toContain(
      '"insecure-registries": ["10.0.0.5:8080"]',
    );
  });
  it('shell quoting and how to run the CLI again', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(cliInvocation('/usr/local/bin/registry-auth-proxy')).toBe('registry-auth-proxy');
    expect(cliInvocation('/repo/bin/registry-auth-proxy.js')).toBe('node /repo/bin/registry-auth-proxy.js');
  });
});
