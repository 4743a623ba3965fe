import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { startPodmanOrReason, type Podman } from '../../fixtures/podman.js';
import { startDockerdOrReason, type Dockerd } from '../../fixtures/dockerd.js';
import { outcome, requireTool } from '../../support/tools.js';
import { MANIFEST_TYPE, pushSmallBlob } from '../../support/seed.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { lintAbsentFacts } from '../../../src/policy/lint.js';
import { compilePolicyText } from '../../../src/policy/load.js';

/**
 * Request-time rules (issue 21) through the real proxy, a real Distribution registry, skopeo and
 * podman: release tags are immutable (an overwrite is decided by asking the upstream, an identical
 * re-push passes), only main moves `latest`, manifests are capped in size and type, a tag lookup
 * that fails refuses the write, and two concurrent pushes of one new tag land at most once.
 */
const POLICY = `
rules:
  - name: ci-owns-its-prefix
    actions: [pull, push, delete, "*"]
    when: identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")
  - name: release-tags-are-immutable
    effect: deny
    phase: request
    actions: [push, delete]
    when: >-
      has(request.tag) && request.tag.matches("^v[0-9]+[.][0-9]+[.][0-9]+([-+].*)?$") &&
      (request.method == "DELETE" ||
       (request.method == "PUT" && upstream.tagExists && request.digest != upstream.digest))
  - name: only-main-moves-latest
    effect: deny
    phase: request
    actions: [push, delete]
    when: >-
      has(request.tag) && request.tag == "latest" && request.method in ["PUT", "DELETE"] &&
      !(has(claims.ref) && claims.ref == "refs/heads/main")
`;

/** CONTRACT §6's example, verbatim, beside an allow rule: it must load and behave as the contract says. */
const CONTRACT_POLICY = `
rules:
  - name: ci-owns-its-prefix
    actions: [pull, push]
    when: identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")
  - name: release-tags-are-immutable
    phase: request                     # token (default) | request
    effect: deny
    actions: [push]
    when: >-
      request.kind == "manifest" && request.method == "PUT" && has(request.tag) &&
      request.tag.matches("^v[0-9]+[.][0-9]+[.][0-9]+$") &&
      upstream.tagExists && upstream.digest != request.digest
`;
const run = promisify(execFile);
let stack: RegistryAndProxy;
let proxy: TestProxy;
let skopeo: string;
let podman: Podman | string;
let engine: Dockerd | string;
let work: string;
let imageA: OciImage;
let imageB: OciImage;
let token = '';
const MAIN = { ref: 'refs/heads/main' };

async function sk(args: string[]): Promise<{ ok: boolean; out: string }> {
  return outcome(skopeo, args);
}

const push = async (image: OciImage, ref: string, claims: Record<string, unknown> = {}) =>
  sk([
    'copy',
    '--dest-tls-verify=false',
    '--dest-creds',
    `x:${await proxy.mintIdentity(claims)}`,
    image.ref,
    `docker://${proxy.host}/${ref}`,
  ]);

/** What the registry itself says the tag holds ('' when absent), asked directly. */
async function upstreamDigest(repo: string, tag: string): Promise<string> {
  const accept = [MANIFEST_TYPE, 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');
  const r = await fetch(`${stack.registry.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept } });
  return r.status === 200 ? r.headers.get('docker-content-digest')! : '';
}

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A small manifest whose blobs are in `repo` (seeded directly in the registry); `salt` makes it unique. */
async function manifestIn(repo: string, salt: string): Promise<Buffer> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, salt }),
  );
  const layer = Buffer.from(`layer ${salt}`);
  const m = {
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await pushSmallBlob(stack.registry.url, repo, config),
      size: config.length,
    },
    layers: [
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: await pushSmallBlob(stack.registry.url, repo, layer),
        size: layer.length,
      },
    ],
  };
  return Buffer.from(JSON.stringify(m));
}

const putManifest = (base: string, repo: string, ref: string, body: Buffer, headers: Record<string, string> = {}) =>
  fetch(`${base}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': MANIFEST_TYPE, ...headers },
    body: new Uint8Array(body),
  });

/** The registry's access log lines written while `fn` ran. */
async function upstreamSaw(fn: () => Promise<void>): Promise<string> {
  const before = stack.registry.logs().length;
  await fn();
  await new Promise((r) => setTimeout(r, 150));
  return stack.registry.logs().slice(before);
}

beforeAll(async () => {
  skopeo = requireTool('skopeo');
  stack = await startRegistryAndProxy({ policy: POLICY });
  proxy = stack.proxy;
  podman = await startPodmanOrReason();
  engine = await startDockerdOrReason();
  work = mkdtempSync(join(tmpdir(), 'rap-request-rules-'));
  imageA = buildOciImage(join(work, 'a'), { layers: 1, layerBytes: 4096 });
  imageB = buildOciImage(join(work, 'b'), { layers: 1, layerBytes: 4096 });
  token = await proxy.registryToken(['repository:team-a/raw:pull,push']);
}, 240_000);
afterAll(async () => {
  if (typeof podman === 'object') await podman.stop();
  if (typeof engine === 'object') await engine.stop();
  await stack?.stop();
}, 60_000);

const IMMUTABLE =
  'issuer ci, subject job-42 was refused PUT manifest team-a/app:v1.0.0: denied by rule release-tags-are-immutable';
const CHECK_V1 =
  "Check with: registry-auth-proxy policy test --issuer-name ci --scope 'repository:team-a/app:pull,push' --method PUT --kind manifest --reference v1.0.0 --claims <identity token>";

describe('immutable release tags, with skopeo and podman', () => {
  it('refuses a second push of v1.0.0 with another image; the upstream digest is unchanged', async () => {
    const first = await push(imageA, 'team-a/app:v1.0.0');
    expect(first.ok, first.out).toBe(true);
    const before = await upstreamDigest('team-a/app', 'v1.0.0');
    expect(before).toMatch(/^sha256:/);
    const second = await push(imageB, 'team-a/app:v1.0.0');
    expect(second.ok).toBe(false);
    // skopeo: writing manifest: uploading manifest v1.0.0 to 127.0.0.1:PORT/team-a/app: denied: issuer ci,
    // subject job-42 was refused PUT manifest team-a/app:v1.0.0: denied by rule release-tags-are-immutable.
    // Check with: registry-auth-proxy policy test --issuer-name ci --scope 'repository:team-a/app:pull,push'
    // --method PUT --kind manifest --reference v1.0.0 --claims <identity token>
    expect(second.out).toContain(
      `uploading manifest v1.0.0 to ${proxy.host}/team-a/app: denied: ${IMMUTABLE}. ${CHECK_V1}`,
    );
    expect(await upstreamDigest('team-a/app', 'v1.0.0')).toBe(before);
    // one log line says which guard refused and why
    const line = proxy.logs.find(
      (l) => l.includes('"guard":"requestRules"') && l.includes('guard refused the request'),
    );
    expect(line).toContain('"reason":"denied by rule release-tags-are-immutable (PUT team-a/app v1.0.0)"');
  });

  it('podman prints the same refusal', async (ctx: TestContext) => {
    if (typeof podman === 'string') return ctx.skip(podman);
    const p = podman;
    const creds = `x:${await proxy.mintIdentity()}`;
    // Image B into podman's storage by way of the proxy (a tag that moves freely).
    expect((await push(imageB, 'team-a/app:podman-src')).ok).toBe(true);
    const source = `${proxy.host}/team-a/app:podman-src`;
    const pulled = await p.podman(['pull', '--quiet', '--tls-verify=false', '--creds', creds, source]);
    expect(pulled.code, pulled.out).toBe(0);
    const r = await p.podman([
      'push',
      '--tls-verify=false',
      '--creds',
      creds,
      source,
      `docker://${proxy.host}/team-a/app:v1.0.0`,
    ]);
    expect(r.code).not.toBe(0);
    // podman: Error: writing manifest: uploading manifest v1.0.0 to 127.0.0.1:PORT/team-a/app: denied: … (as skopeo)
    expect(r.out).toContain(
      `Error: writing manifest: uploading manifest v1.0.0 to ${proxy.host}/team-a/app: denied: ${IMMUTABLE}. ${CHECK_V1}`,
    );
  });

  it('re-pushing the identical image to v1.0.0 succeeds; dev moves freely', async () => {
    const again = await push(imageA, 'team-a/app:v1.0.0');
    expect(again.ok, again.out).toBe(true);
    for (const image of [imageA, imageB, imageA]) {
      const r = await push(image, 'team-a/app:dev');
      expect(r.ok, r.out).toBe(true);
    }
    expect(await upstreamDigest('team-a/app', 'dev')).toBe(await upstreamDigest('team-a/app', 'v1.0.0'));
  });

  it('refuses deleting a release tag', async () => {
    const r = await sk([
      'delete',
      '--tls-verify=false',
      '--creds',
      `x:${await proxy.mintIdentity()}`,
      `docker://${proxy.host}/team-a/app:v1.0.0`,
    ]);
    expect(r.ok).toBe(false);
    // skopeo deletes by digest: the rule is asked for each tag pointing at it, so v1.0.0 is named.
    // Failed to delete /v2/team-a/app/manifests/sha256:…: {"errors":[…]} (403 Forbidden: issuer ci, …)
    expect(r.out).toContain(
      "(403 Forbidden: issuer ci, subject job-42 was refused DELETE manifest team-a/app:v1.0.0: denied by rule release-tags-are-immutable. Check with: registry-auth-proxy policy test --issuer-name ci --scope 'repository:team-a/app:delete' --method DELETE --kind manifest --reference v1.0.0",
    );
    expect(await upstreamDigest('team-a/app', 'v1.0.0')).toMatch(/^sha256:/);
  });
});

describe('immutable release tags, with Docker', () => {
  it('docker push of another image to an existing release tag prints the refusal; the upstream keeps the first', async (ctx: TestContext) => {
    if (typeof engine === 'string') return ctx.skip(engine);
    const docker = engine;
    const config = docker.newConfigDir();
    const login = await docker.docker(['login', proxy.host, '--username', 'ci', '--password-stdin'], {
      config,
      input: await proxy.mintIdentity(),
    });
    expect(login.code, login.out).toBe(0);
    // Both images into the engine, through docker-archives made offline by skopeo.
    for (const [image, name] of [
      [imageA, 'a'],
      [imageB, 'b'],
    ] as const) {
      const archive = join(work, `docker-${name}.tar`);
      await run(skopeo, ['copy', '--quiet', image.ref, `docker-archive:${archive}:localhost/rap-rules/${name}:v1`], {
        timeout: 60_000,
      });
      const loaded = await docker.docker(['load', '--input', archive]);
      expect(loaded.code, loaded.out).toBe(0);
    }
    const ref = `${proxy.host}/team-a/dock:v2.0.0`;
    expect((await docker.docker(['tag', 'localhost/rap-rules/a:v1', ref])).code).toBe(0);
    const first = await docker.docker(['push', ref], { config });
    expect(first.code, first.out).toBe(0);
    const before = await upstreamDigest('team-a/dock', 'v2.0.0');
    expect(before).toMatch(/^sha256:/);
    expect((await docker.docker(['tag', 'localhost/rap-rules/b:v1', ref])).code).toBe(0);
    const second = await docker.docker(['push', ref], { config });
    expect(second.code).not.toBe(0);
    // docker: denied: issuer ci, subject job-42 was refused PUT manifest team-a/dock:v2.0.0: denied by rule
    // release-tags-are-immutable. Check with: …
    expect(second.out).toContain(
      'denied: issuer ci, subject job-42 was refused PUT manifest team-a/dock:v2.0.0: denied by rule release-tags-are-immutable',
    );
    expect(await upstreamDigest('team-a/dock', 'v2.0.0')).toBe(before);
    // the identical image again is an idempotent retry
    expect((await docker.docker(['tag', 'localhost/rap-rules/a:v1', ref])).code).toBe(0);
    const again = await docker.docker(['push', ref], { config });
    expect(again.code, again.out).toBe(0);
  });
});

describe('only main moves latest', () => {
  it('the same image: moved by a main-branch identity, refused for another', async () => {
    const main = await push(imageA, 'team-a/app:latest', MAIN);
    expect(main.ok, main.out).toBe(true);
    const other = await push(imageA, 'team-a/app:latest', { ref: 'refs/heads/feature' });
    expect(other.ok).toBe(false);
    expect(other.out).toContain('was refused PUT manifest team-a/app:latest: denied by rule only-main-moves-latest');
  });
});

describe('raw registry API', () => {
  it('pushes by digest', async () => {
    const m = await manifestIn('team-a/raw', 'by-digest');
    const r = await putManifest(proxy.url, 'team-a/raw', sha(m), m);
    expect(r.status, await r.text()).toBe(201);
  });

  it('a 5 MiB manifest gets 413 and an unlisted media type 415; neither reaches the upstream', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    let tooBig!: Response;
    let odd!: Response;
    const saw = await upstreamSaw(async () => {
      tooBig = await putManifest(proxy.url, 'team-a/raw', 'big', big);
      odd = await putManifest(proxy.url, 'team-a/raw', 'odd', await manifestIn('team-a/raw', 'odd'), {
        'content-type': 'application/vnd.example.thing+json',
      });
    });
    expect(tooBig.status).toBe(413);
    expect(await tooBig.json()).toMatchObject({
      errors: [
        { code: 'MANIFEST_INVALID', message: expect.stringContaining('limits.manifestMaxBytes is 4194304 bytes') },
      ],
    });
    expect(odd.status).toBe(415);
    expect((await odd.json()).errors[0].message).toContain(
      'manifest media type "application/vnd.example.thing+json" is not accepted here',
    );
    expect(saw).not.toContain('/manifests/big');
    expect(saw).not.toContain('/manifests/odd');
    expect(await upstreamDigest('team-a/raw', 'odd')).toBe('');
  });

  it('two concurrent pushes of different manifests to one new release tag: at most one lands', async () => {
    const [a, b] = [await manifestIn('team-a/raw', 'race-a'), await manifestIn('team-a/raw', 'race-b')];
    const answers = await Promise.all([
      putManifest(proxy.url, 'team-a/raw', 'v2.0.0', a),
      putManifest(proxy.url, 'team-a/raw', 'v2.0.0', b),
    ]);
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 403]);
    const landed = answers[0]!.status === 201 ? a : b;
    expect(await upstreamDigest('team-a/raw', 'v2.0.0')).toBe(sha(landed));
  });
});

describe('a tag lookup that fails', () => {
  let front: Server;
  let failing: TestProxy;
  beforeAll(async () => {
    // In front of the registry: 503 to a manifest HEAD (the guard's lookup), everything else passed on.
    const up = new URL(stack.registry.url);
    front = createServer((req, res) => {
      if (req.method === 'HEAD' && req.url?.includes('/manifests/')) return void res.writeHead(503).end();
      const out = httpRequest(
        { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode!, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(out);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const { port } = front.address() as { port: number };
    failing = await startProxy({ upstream: `http://127.0.0.1:${port}`, policy: POLICY });
  });
  afterAll(async () => {
    await failing?.stop();
    front?.close();
  });

  it('refuses the write and says why', async () => {
    const t = await failing.registryToken(['repository:team-a/raw:pull,push']);
    const m = await manifestIn('team-a/raw', 'lookup');
    const r = await fetch(`${failing.url}/v2/team-a/raw/manifests/v3.0.0`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${t}`, 'content-type': MANIFEST_TYPE },
      body: new Uint8Array(m),
    });
    expect(r.status).toBe(403);
    const message = (await r.json()).errors[0].message as string;
    expect(message).toMatch(
      /rule release-tags-are-immutable could not be evaluated, so it refuses: upstream\.\w+ unknown: the upstream answered HTTP 503 to the tag lookup/,
    );
    expect(await upstreamDigest('team-a/raw', 'v3.0.0')).toBe('');
    expect(
      failing.logs.some(
        (l) =>
          l.includes('guard refused the request') && l.includes('the upstream answered HTTP 503 to the tag lookup'),
      ),
    ).toBe(true);
    const viaSkopeo = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${await failing.mintIdentity()}`,
      imageB.ref,
      `docker://${failing.host}/team-a/app:v3.0.0`,
    ]);
    expect(viaSkopeo.ok).toBe(false);
    // skopeo: … uploading manifest v3.0.0 to …/team-a/app: denied: issuer ci, subject job-42 was refused PUT
    // manifest team-a/app:v3.0.0: rule release-tags-are-immutable could not be evaluated, so it refuses:
    // upstream.digest unknown: the upstream answered HTTP 503 to the tag lookup. Check with: …
    expect(viaSkopeo.out).toMatch(
      /uploading manifest v3\.0\.0 to [^ ]+: denied: .*could not be evaluated, so it refuses: .*the upstream answered HTTP 503 to the tag lookup\./,
    );
  });
});

describe('the contract example (CONTRACT §6, verbatim)', () => {
  let contract: TestProxy;
  beforeAll(async () => {
    contract = await startProxy({ upstream: stack.registry.url, policy: CONTRACT_POLICY });
  });
  afterAll(async () => {
    await contract?.stop();
  });
  const pushTo = async (image: OciImage, ref: string) =>
    sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${await contract.mintIdentity()}`,
      image.ref,
      `docker://${contract.host}/${ref}`,
    ]);

  it('v1.2.3 pushed twice with different content: the second is refused, 403 DENIED naming the rule', async () => {
    const first = await pushTo(imageA, 'team-a/contract:v1.2.3');
    expect(first.ok, first.out).toBe(true);
    const before = await upstreamDigest('team-a/contract', 'v1.2.3');
    expect(before).toMatch(/^sha256:/);
    const second = await pushTo(imageB, 'team-a/contract:v1.2.3');
    expect(second.ok).toBe(false);
    // skopeo: … uploading manifest v1.2.3 to 127.0.0.1:PORT/team-a/contract: denied: issuer ci, subject job-42
    // was refused PUT manifest team-a/contract:v1.2.3: denied by rule release-tags-are-immutable. Check with: …
    expect(second.out).toContain(
      `uploading manifest v1.2.3 to ${contract.host}/team-a/contract: denied: issuer ci, subject job-42 was refused PUT manifest team-a/contract:v1.2.3: denied by rule release-tags-are-immutable.`,
    );
    expect(await upstreamDigest('team-a/contract', 'v1.2.3')).toBe(before);
    // the status and code, as the registry API answers them
    const t = await contract.registryToken(['repository:team-a/contract:pull,push']);
    const m = await manifestIn('team-a/contract', 'contract-other');
    const r = await fetch(`${contract.url}/v2/team-a/contract/manifests/v1.2.3`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${t}`, 'content-type': MANIFEST_TYPE },
      body: new Uint8Array(m),
    });
    expect(r.status).toBe(403);
    const body = (await r.json()).errors[0];
    expect(body.code).toBe('DENIED');
    expect(body.message).toContain('denied by rule release-tags-are-immutable');
    expect(await upstreamDigest('team-a/contract', 'v1.2.3')).toBe(before);
  });

  it('the same content again is allowed (an idempotent retry)', async () => {
    const again = await pushTo(imageA, 'team-a/contract:v1.2.3');
    expect(again.ok, again.out).toBe(true);
  });

  it('a push by digest is not refused by this rule (no tag: has(request.tag) is false)', async () => {
    const t = await contract.registryToken(['repository:team-a/contract:pull,push']);
    const m = await manifestIn('team-a/contract', 'contract-digest');
    const r = await fetch(`${contract.url}/v2/team-a/contract/manifests/${sha(m)}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${t}`, 'content-type': MANIFEST_TYPE },
      body: new Uint8Array(m),
    });
    expect(r.status, await r.text()).toBe(201);
    // and start-up has nothing to warn about: the example guards request.tag, and a manifest PUT always has a digest
    expect(lintAbsentFacts(compilePolicyText(CONTRACT_POLICY).rules)).toEqual([]);
  });
});
