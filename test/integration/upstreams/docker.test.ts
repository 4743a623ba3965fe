import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { startDockerdOrReason, type CliResult, type Dockerd } from '../../fixtures/dockerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { requireTool } from '../../support/tools.js';

/**
 * Issue 12 with Docker as the client (a private dockerd 20.10): one proxy in front of three real
 * Distribution registries. `a/` and `b/` are two registries; `r/` and `f/` are one more, whose
 * blob GET/HEAD answer a storage redirect (Distribution's `redirect` storage middleware, to a
 * static server over its filesystem storage on another loopback address), `r/` passing the 307 to
 * Docker (the default), `f/` with `followRedirects: true`. Docker pushes and pulls through each;
 * the registries are checked directly.
 */

const run = promisify(execFile);

const POLICY = `
rules:
  - name: ci-everywhere
    actions: [pull, push]
    when: identity.issuerName == "ci"
`;

let engine: Dockerd | string;
let regA: Registry;
let regB: Registry;
let regR: Registry;
let proxy: TestProxy;
let work: string;
let config: string;
/** A two-layer image as a docker-archive tarball, loaded as `LOADED`. */
let archive: string;
const LAYERS = 2;
const LOADED = 'localhost/rap-test/upstreams:v1';

/** Requests the storage host got: path, method, headers. */
const stored: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
let storage: Server;
let storageURL: string;

function dockerOrSkip(ctx: TestContext): Dockerd {
  if (typeof engine === 'string') ctx.skip(engine);
  return engine as Dockerd;
}
function ok(r: CliResult): CliResult {
  expect(r.code, r.out).toBe(0);
  return r;
}

/** Object storage stand-in: serves the redirected paths from the registry's filesystem storage. */
function storageServer(root: () => string): Server {
  return createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    stored.push({ method: req.method ?? '', path, headers: req.headers });
    const file = resolve(root(), `.${path}`);
    let size: number;
    try {
      if (!file.startsWith(`${root()}${sep}`)) throw new Error('outside');
      size = statSync(file).size;
    } catch {
      return void res.writeHead(404).end();
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, host, () => done((server.address() as { port: number }).port));
  });
}

/** Starts a registry with these environment variables (Distribution reads config overrides from REGISTRY_*). */
async function registryWithEnv(env: Record<string, string>): Promise<Registry> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await startRegistry();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

/** Tags (upstream name) of a repository, asked of the registry itself. */
async function tagsOf(registry: Registry, repo: string): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/${repo}/tags/list`);
  return res.status === 404 ? [] : (((await res.json()) as { tags: string[] | null }).tags ?? []);
}

/** Layer digests of a manifest, asked of the registry itself (Docker compresses layers as it pushes). */
async function layersOf(registry: Registry, repo: string, tag: string): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  return ((await res.json()) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

/** Pushes LOADED as `<proxy>/<name>`, returning the manifest digest Docker reports. */
async function push(docker: Dockerd, name: string): Promise<string> {
  const ref = `${proxy.host}/${name}`;
  ok(await docker.docker(['tag', LOADED, ref]));
  const out = ok(await docker.docker(['push', ref], { config })).stdout;
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
  expect(digest, out).toBeDefined();
  return digest!;
}

/** Forgets every local image (layers included), so the next pull downloads every blob. */
async function forgetImages(docker: Dockerd): Promise<void> {
  const ids = ok(await docker.docker(['images', '--quiet']))
    .stdout.split('\n')
    .filter(Boolean);
  if (ids.length) ok(await docker.docker(['image', 'rm', '--force', ...new Set(ids)]));
}

/** `docker pull <proxy>/<name>` of an image not held locally; resolves with the digest Docker reports. */
async function pull(docker: Dockerd, name: string): Promise<string> {
  await forgetImages(docker);
  const out = ok(await docker.docker(['pull', `${proxy.host}/${name}`], { config })).stdout;
  return /Digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1] ?? out;
}

beforeAll(async () => {
  engine = await startDockerdOrReason();
  work = mkdtempSync(join(tmpdir(), 'rap-upstreams-docker-'));
  regA = await startRegistry();
  regB = await startRegistry();
  // the storage host: 127.0.0.2 is loopback too on Linux, another host than the registry's in any case
  let root = '';
  storage = storageServer(() => root);
  storageURL = await listen(storage, '127.0.0.2').then(
    (port) => `http://127.0.0.2:${port}`,
    async () => ((storage = storageServer(() => root)), `http://localhost:${await listen(storage, '127.0.0.1')}`),
  );
  // the binary (a container would not see this environment), with the redirect middleware
  regR = await registryWithEnv({
    RAP_TEST_REGISTRY: 'binary',
    REGISTRY_MIDDLEWARE: `{storage: [{name: redirect, options: {baseurl: "${storageURL}/"}}]}`,
  });
  if (regR.backend !== 'binary') throw new Error(`the redirecting registry must be the binary, got ${regR.backend}`);
  root = regR.storageDir;
  proxy = await startProxy({
    policy: POLICY,
    config: {
      upstreams: [
        { name: 'reg-a', prefix: 'a/', url: regA.url },
        { name: 'reg-b', prefix: 'b/', url: regB.url },
        { name: 'passing', prefix: 'r/', url: regR.url },
        { name: 'following', prefix: 'f/', url: regR.url, followRedirects: true },
      ],
    },
  });
  if (typeof engine === 'string') return;
  const image = buildOciImage(join(work, 'oci'), { layers: LAYERS, layerBytes: 32 * 1024 });
  archive = join(work, 'image.tar');
  await run(requireTool('skopeo'), ['copy', '--quiet', image.ref, `docker-archive:${archive}:${LOADED}`], {
    timeout: 60_000,
  });
  ok(await engine.docker(['load', '--input', archive]));
  config = engine.newConfigDir();
  const identity = await proxy.mintIdentity({ sub: 'docker-user' });
  ok(await engine.docker(['login', proxy.host, '--username', 'x', '--password-stdin'], { config, input: identity }));
}, 240_000);

afterAll(async () => {
  await proxy?.stop();
  for (const r of [regA, regB, regR]) await r?.stop();
  if (storage) {
    storage.closeAllConnections();
    await new Promise((r) => storage.close(r));
  }
  if (typeof engine === 'object') await engine.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('docker through two prefixes of one proxy', () => {
  let pushedA: string;
  let pushedB: string;

  it('a push to a/ lands in registry a only, under the upstream name', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    pushedA = await push(docker, 'a/app:v1');
    expect(await tagsOf(regA, 'app')).toEqual(['v1']);
    expect(await tagsOf(regB, 'app')).toEqual([]);
  });

  it('a push to b/ of the same layers: Docker asks to mount from a/, which is sent to b as a plain upload', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const audits = proxy.logs.length;
    pushedB = await push(docker, 'b/app:v2');
    expect(await tagsOf(regB, 'app')).toEqual(['v2']);
    expect(await tagsOf(regA, 'app')).toEqual(['v1']);
    // Docker asked for a/app alongside b/app: the mount source (its metadata says a/app holds the layers)
    const requested = proxy.logs
      .slice(audits)
      .filter((l) => l.includes('"audit":"token"'))
      .flatMap((l) => JSON.parse(l).requested as string[]);
    expect(requested).toContain('repository:a/app:pull');
    // registry b got no mount, only uploads, and holds every layer itself
    expect(regB.logs()).toMatch(/POST \/v2\/app\/blobs\/uploads\//);
    expect(regB.logs()).not.toContain('mount=');
    const layers = await layersOf(regB, 'app', 'v2');
    expect(layers).toHaveLength(LAYERS);
    for (const layer of layers)
      expect((await fetch(`${regB.url}/v2/app/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('pulls of a/ and b/ come from their own registries', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const blobGets = (r: Registry) => (r.logs().match(/"GET \/v2\/app\/blobs\/sha256:/g) ?? []).length;
    const [a0, b0] = [blobGets(regA), blobGets(regB)];
    expect(await pull(docker, 'a/app:v1')).toBe(pushedA);
    expect([blobGets(regA) > a0, blobGets(regB) - b0]).toEqual([true, 0]);
    expect(await pull(docker, 'b/app:v2')).toBe(pushedB);
    expect(blobGets(regB)).toBeGreaterThan(b0);
  });
});

describe('docker pulls of blobs the upstream redirects to storage', () => {
  let pushed: string;
  const blobLines = (prefix: string, status: number) =>
    proxy.logs.filter(
      (l) =>
        l.includes(`"path":"/v2/${prefix}/app/blobs/sha256:`) &&
        l.includes(`"method":"GET"`) &&
        l.includes(`"status":${status},`),
    );

  beforeAll(async () => {
    if (typeof engine === 'string') return;
    ok(await engine.docker(['load', '--input', archive]));
    pushed = await push(engine, 'r/app:v1');
  }, 120_000);

  it('passed through (default): Docker gets the 307 and fetches the blob from storage itself', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const before = stored.length;
    expect(await pull(docker, 'r/app:v1')).toBe(pushed);
    expect(blobLines('r', 307).length).toBeGreaterThanOrEqual(LAYERS);
    const fetched = stored.slice(before).filter((s) => s.method === 'GET');
    expect(fetched.length).toBeGreaterThanOrEqual(LAYERS);
    // Go's client, following a redirect, names the page it came from: Docker was sent there by the proxy
    expect(fetched.every((s) => s.headers.referer?.startsWith(`${proxy.url}/v2/r/app/blobs/sha256:`))).toBe(true);
  });

  it('followed (followRedirects): the proxy fetches from storage without credentials and streams the blob to Docker', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const before = stored.length;
    expect(await pull(docker, 'f/app:v1')).toBe(pushed);
    expect(blobLines('f', 307)).toEqual([]);
    expect(blobLines('f', 200).length).toBeGreaterThanOrEqual(LAYERS);
    const fetched = stored.slice(before).filter((s) => s.method === 'GET');
    expect(fetched.length).toBeGreaterThanOrEqual(LAYERS);
    // the proxy's own request: no Referer as Docker's redirected fetches have, no credentials
    expect(fetched.every((s) => s.headers.referer === undefined)).toBe(true);
    expect(fetched.every((s) => s.headers.authorization === undefined)).toBe(true);
  });
});
