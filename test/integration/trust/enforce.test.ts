import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { startPodmanOrReason, type Podman } from '../../fixtures/podman.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { pushSmallBlob } from '../../support/seed.js';
import { cosignSigManifest, cosignSign, keyPair, simpleSigningPayload, type Artifact } from '../../support/sigstore.js';
import { outcome, requireTool } from '../../support/tools.js';

/**
 * Signature enforcement (issue 22) through the real proxy in front of a real Distribution registry,
 * with skopeo and podman pulling: a signed image pulls; unsigned and wrongly signed ones are refused
 * before the registry serves a blob (asserted on its access log); a tag moved upstream between the
 * client's manifest and blob requests never gets the client the unverified image.
 */

const POLICY = `
rules:
  - name: ci-may-pull-and-push
    actions: [pull, push]
    when: identity.issuerName == "ci"
`;
const key = keyPair('ec');
const other = keyPair('ec');
const OCI = 'application/vnd.oci.image.manifest.v1+json';
let stack: RegistryAndProxy;
let skopeo: string;
let podman: Podman | string;
let work: string;
let creds = '';
const images: Record<'signed' | 'unsigned' | 'wrong' | 'audit', OciImage> = {} as never;
/** The manifest digest each image has in the registry (skopeo may rewrite the manifest when it copies). */
const digests: Record<string, string> = {};

async function registryDigest(repo: string, tag: string): Promise<string> {
  const r = await fetch(`${stack.registry.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: OCI },
  });
  return r.headers.get('docker-content-digest') ?? '';
}

async function sk(args: string[]): Promise<{ ok: boolean; out: string }> {
  return outcome(skopeo, args);
}

/** Straight into the registry (not through the proxy): the image as a producer pushed it. */
const upload = (image: OciImage, ref: string) =>
  sk(['copy', '--dest-tls-verify=false', image.ref, `docker://${new URL(stack.registry.url).host}/${ref}`]);

async function pushArtifact(repo: string, a: Artifact): Promise<void> {
  for (const b of a.blobs) await pushSmallBlob(stack.registry.url, repo, b);
  for (const m of a.manifests) {
    const put = await fetch(`${stack.registry.url}/v2/${repo}/manifests/${m.reference!}`, {
      method: 'PUT',
      body: new Uint8Array(m.body),
      headers: { 'content-type': m.mediaType },
    });
    if (put.status !== 201) throw new Error(`PUT ${repo}:${m.reference!}: HTTP ${put.status} ${await put.text()}`);
  }
}

const sign = (repo: string, digest: string, signer = key) => {
  const payload = simpleSigningPayload(digest, `${new URL(stack.registry.url).host}/${repo}`);
  return pushArtifact(
    repo,
    cosignSigManifest(digest, [{ payload, signature: cosignSign(signer.privateKey, payload) }]),
  );
};

/** The registry's access log lines written while `fn` ran. */
async function upstreamSaw<T>(fn: () => Promise<T>): Promise<{ result: T; log: string }> {
  const before = stack.registry.logs().length;
  const result = await fn();
  await new Promise((r) => setTimeout(r, 150));
  return { result, log: stack.registry.logs().slice(before) };
}

/** The registry served none of the image's blobs (the proxy's own reads of signature blobs are fine). */
function expectNoBlobOf(log: string, image: OciImage): void {
  for (const blob of [image.configDigest, ...image.layerDigests]) expect(log).not.toContain(`/blobs/${blob}`);
  expect(log).toContain('/manifests/');
}

const pull = (ref: string, dest: string) =>
  sk([
    'copy',
    '--src-tls-verify=false',
    '--src-creds',
    creds,
    `docker://${stack.proxy.host}/${ref}`,
    `dir:${join(work, `pulled-${dest}`)}`,
  ]);
const message = (repo: string, digest: string, policy = 'prod-signed') =>
  `${repo}@${digest}: no signature by key prod-signing (policy ${policy})`;

beforeAll(async () => {
  skopeo = requireTool('skopeo');
  work = mkdtempSync(join(tmpdir(), 'rap-enforce-'));
  // The key is called by its file name: prod-signing.
  const publicKeyFile = join(work, 'prod-signing.pub');
  writeFileSync(publicKeyFile, key.pem);
  const keys = [publicKeyFile];
  stack = await startRegistryAndProxy({
    policy: POLICY,
    config: {
      signatures: [
        { name: 'prod-signed', repositories: ['prod/**'], keys },
        { name: 'audit-signed', repositories: ['audit/**'], mode: 'audit', keys },
      ],
    },
  });
  podman = await startPodmanOrReason();
  creds = `x:${await stack.proxy.mintIdentity({})}`;
  for (const name of ['signed', 'unsigned', 'wrong', 'audit'] as const) {
    images[name] = buildOciImage(join(work, name), { layers: 1, layerBytes: 4096 });
    const repo = name === 'audit' ? 'audit/app' : 'prod/app';
    const up = await upload(images[name], `${repo}:${name}`);
    expect(up.ok, up.out).toBe(true);
    digests[name] = await registryDigest(repo, name);
  }
  await sign('prod/app', digests.signed!);
  await sign('prod/app', digests.wrong!, other);
}, 120_000);
afterAll(async () => {
  if (typeof podman === 'object') await podman.stop();
  await stack?.stop();
});

describe('skopeo through the proxy', () => {
  it('a signed image pulls (by tag: the upstream is asked by digest)', async () => {
    const { result, log } = await upstreamSaw(() => pull('prod/app:signed', 'signed'));
    expect(result.ok, result.out).toBe(true);
    expect(log).toContain(`/v2/prod/app/manifests/${digests.signed!}`);
    expect(log).not.toMatch(/GET \/v2\/prod\/app\/manifests\/signed /);
  });

  it.each(['unsigned', 'wrong'] as const)(
    '%s: refused with the reason, before the registry serves a blob',
    async (name) => {
      const { result, log } = await upstreamSaw(() => pull(`prod/app:${name}`, name));
      expect(result.ok).toBe(false);
      // skopeo: level=fatal msg="initializing source docker://127.0.0.1:PORT/prod/app:wrong: reading manifest wrong in
      // 127.0.0.1:PORT/prod/app: denied: prod/app@sha256:…: no signature by key prod-signing (policy prod-signed)"
      expect(result.out).toContain(`denied: ${message('prod/app', digests[name]!)}`);
      expectNoBlobOf(log, images[name]);
    },
  );

  it('a blob of an unverified image is refused even by digest', async () => {
    const token = await stack.proxy.registryToken(['repository:prod/app:pull']);
    const r = await fetch(`${stack.proxy.url}/v2/prod/app/blobs/${images.unsigned.layerDigests[0]!}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(
      /pull the image by a signed manifest first/,
    );
  });

  it('the signature itself stays readable (cosign verify reads it)', async () => {
    const r = await pull(`prod/app:${digests.signed!.replace(':', '-')}.sig`, 'sig');
    expect(r.ok, r.out).toBe(true);
  });

  it('audit mode: the unsigned image is served', async () => {
    const r = await pull('audit/app:audit', 'audit');
    expect(r.ok, r.out).toBe(true);
  });
});

describe('podman through the proxy', () => {
  it('pulls the signed image and prints the refusal of the unsigned one', async (ctx: TestContext) => {
    if (typeof podman === 'string') return ctx.skip(podman);
    const ok = await podman.podman([
      'pull',
      '--quiet',
      '--tls-verify=false',
      '--creds',
      creds,
      `${stack.proxy.host}/prod/app:signed`,
    ]);
    expect(ok.code, ok.out).toBe(0);
    const { result, log } = await upstreamSaw(() =>
      (podman as Podman).podman([
        'pull',
        '--tls-verify=false',
        '--creds',
        creds,
        `${stack.proxy.host}/prod/app:unsigned`,
      ]),
    );
    expect(result.code).not.toBe(0);
    // podman: Error: initializing source docker://127.0.0.1:PORT/prod/app:unsigned: reading manifest unsigned in
    // 127.0.0.1:PORT/prod/app: denied: prod/app@sha256:…: no signature by key prod-signing (policy prod-signed)
    expect(result.out).toContain(`denied: ${message('prod/app', digests.unsigned!)}`);
    expectNoBlobOf(log, images.unsigned);
  });
});

describe('tag swap', () => {
  it('the tag moved upstream between manifest and blobs: the client gets the verified image or a refusal', async () => {
    const up = await upload(images.signed, 'prod/app:moving');
    expect(up.ok, up.out).toBe(true);
    const token = await stack.proxy.registryToken(['repository:prod/app:pull']);
    const auth = { authorization: `Bearer ${token}`, accept: OCI };
    const first = await fetch(`${stack.proxy.url}/v2/prod/app/manifests/moving`, { headers: auth });
    expect(first.status).toBe(200);
    expect(first.headers.get('docker-content-digest')).toBe(digests.signed!);
    const body = (await first.json()) as { layers: { digest: string }[] };
    // The producer moves the tag to the unsigned image.
    expect((await upload(images.unsigned, 'prod/app:moving')).ok).toBe(true);
    for (const layer of body.layers) {
      const blob = await fetch(`${stack.proxy.url}/v2/prod/app/blobs/${layer.digest}`, { headers: auth });
      expect(blob.status).toBe(200);
      await blob.arrayBuffer();
    }
    const unverified = await fetch(`${stack.proxy.url}/v2/prod/app/blobs/${images.unsigned.layerDigests[0]!}`, {
      headers: auth,
    });
    expect(unverified.status).toBe(403);
    // Asked again: the verified digest (a briefly cached tag lookup) or the refusal, never the unsigned manifest.
    const again = await fetch(`${stack.proxy.url}/v2/prod/app/manifests/moving`, { headers: auth });
    if (again.status === 200) expect(again.headers.get('docker-content-digest')).toBe(digests.signed!);
    else expect(again.status).toBe(403);
  });
});
