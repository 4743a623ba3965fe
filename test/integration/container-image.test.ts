import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { bindTestcontainers, buildScratchImage, EngineUnavailable, startDockerd, type Dockerd } from '../fixtures/dockerd.js';
import { buildOciImage } from '../fixtures/images.js';
import { freePort, startRegistry, useEngineForRegistries, type Registry } from '../fixtures/registry.js';
import { TestIssuer } from '../support/issuer.js';
import { requireTool } from '../support/tools.js';

/**
 * The project's own Dockerfile, built and run on a private engine. Nothing is pulled: the base
 * image (NODE_IMAGE build argument) is made from this machine's node, npm, /bin/sh and /usr/bin/env
 * plus the libraries ldd names; `npm ci` inside the build reaches the npm registry through
 * `--network host`. The image then runs through testcontainers next to the registry image (both
 * host network), and a real client pushes through it.
 */

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BASE = 'rap-test/node:local';
const IMAGE = 'rap-test/registry-auth-proxy:test';

let engine: Dockerd | undefined;
let unavailable: string | undefined;
let registry: Registry;
let work: string;

function engineOrSkip(ctx: TestContext): Dockerd {
  if (!engine) ctx.skip(unavailable);
  return engine!;
}

/**
 * overlay2 where the kernel has it (the build runs ~20 steps; vfs copies the whole tree for each,
 * about 4× slower here), else vfs.
 */
async function startEngine(): Promise<Dockerd> {
  try {
    return await startDockerd({ storageDriver: 'overlay2' });
  } catch (err) {
    if (!(err instanceof EngineUnavailable)) throw err;
    return startDockerd({ storageDriver: 'vfs' });
  }
}

/** A node 20 base image from this machine's own files: what `node:20-bookworm-slim` gives the Dockerfile. */
async function buildNodeBase(d: Dockerd): Promise<void> {
  // npm as installed next to this node (<prefix>/bin/node, <prefix>/lib/node_modules/npm)
  const npmDir = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm');
  const cli = (name: string) => ({ content: `#!/bin/sh\nexec /usr/bin/node /usr/lib/node_modules/npm/bin/${name} "$@"\n`, mode: 0o755 });
  // the machine's trust store: npm reaches its registry through whatever TLS this machine trusts
  const ca = '/etc/ssl/certs/ca-certificates.crt';
  await buildScratchImage(d, BASE, {
    files: [
      [process.execPath, '/usr/bin/node'],
      ['/bin/dash', '/bin/sh'], // RUN steps and npm scripts
      ['/usr/bin/env', '/usr/bin/env'], // `#!/usr/bin/env node` of node_modules/.bin (tsc)
      ...(existsSync(ca) ? [[ca, ca] as [string, string]] : []),
    ],
    trees: [[npmDir, '/usr/lib/node_modules/npm']],
    text: {
      '/usr/bin/npm': cli('npm-cli.js'),
      '/usr/bin/npx': cli('npx-cli.js'),
      '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/bin/sh\n',
      '/etc/group': 'root:x:0:\nnonroot:x:65532:\n',
    },
    dirs: ['/tmp', '/root'],
    dockerfile: [`ENV PATH=/usr/local/bin:/usr/bin:/bin${existsSync(ca) ? ` NODE_EXTRA_CA_CERTS=${ca}` : ''}`],
  });
}

beforeAll(async () => {
  try {
    engine = await startEngine();
  } catch (err) {
    if (!(err instanceof EngineUnavailable) || process.env.CI === 'true') throw err;
    unavailable = `no private Docker engine: ${err.message}`;
    return;
  }
  work = mkdtempSync(join(tmpdir(), 'rap-container-image-'));
  await buildNodeBase(engine);
  const build = await engine.docker(['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${BASE}`, '--tag', IMAGE, REPO], { timeoutMs: 280_000 });
  expect(build.code, `docker build of the project's Dockerfile failed:\n${build.out}`).toBe(0);
  await useEngineForRegistries(engine);
  registry = await startRegistry();
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  await engine?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('the project image (Dockerfile, NODE_IMAGE made locally)', () => {
  let issuer: TestIssuer;
  let url: string;
  let host: string;
  let container: { exec(cmd: string[]): Promise<{ output: string; exitCode: number }>; stop(): Promise<unknown> } | undefined;

  beforeAll(async () => {
    if (!engine) return;
    bindTestcontainers(engine);
    issuer = await TestIssuer.create({ issuer: 'https://ci.test', audience: 'registry.test', kid: 'img', claims: { sub: 'image-test' } });
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    url = `http://${host}`;
    // mounted read-only at the image's default config path; readable by the image's user 65532
    const etc = join(work, 'etc');
    mkdirSync(etc);
    chmodSync(etc, 0o755);
    issuer.writeJwks(join(etc, 'jwks.json'));
    writeFileSync(join(etc, 'policy.yaml'), 'rules: [{name: ci-pushes-ci, actions: [pull, push], when: \'request.repository.startsWith("ci/")\'}]\n');
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
        .withLogConsumer((stream) => stream.on('data', (d: Buffer | string) => (output = (output + d.toString()).slice(-20_000))))
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
    await run(skopeo, ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `x:${id}`, image.ref, `docker://${host}/ci/app:v1`], { timeout: 60_000 });
    await run(skopeo, ['copy', '--quiet', '--src-tls-verify=false', '--src-creds', `x:${id}`, `docker://${host}/ci/app:v1`, `oci:${join(work, 'pulled')}:v1`], {
      timeout: 60_000,
    });
    expect(await registry.repositories()).toContain('ci/app');
  });
});
