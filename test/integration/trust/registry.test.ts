import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { buildConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/log.js';
import { createTrust, type Trust } from '../../../src/trust/verify.js';
import { createUpstreams, type Upstream } from '../../../src/upstream/upstream.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { pushSmallBlob } from '../../support/seed.js';
import {
  bundleReferrer,
  cosignSigManifest,
  cosignSign,
  digestOf,
  fallbackIndex,
  image,
  keyPair,
  signStatement,
  simpleSigningPayload,
  startMockSigstore,
  type Artifact,
  type MockSigstore,
} from '../../support/sigstore.js';

/**
 * Discovery against a real Distribution registry (2.8: no referrers API, so its 404 sends the
 * lookup to the fallback tag), with the signature artifacts pushed by plain HTTP PUTs as cosign
 * pushes them: cosign's `.sig` tag, and a Sigstore bundle referrer listed in the `sha256-<hex>` index.
 */

const GH = 'https://token.actions.githubusercontent.com';
const WORKFLOW = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';
const key = keyPair('ec');
const dir = mkdtempSync(join(tmpdir(), 'rap-trust-reg-'));

let registry: Registry;
let sigstore: MockSigstore;
let upstreams: Upstream[];
let trust: Trust;

async function push(repo: string, ...artifacts: Artifact[]): Promise<void> {
  for (const a of artifacts) {
    for (const b of a.blobs) await pushSmallBlob(registry.url, repo, b);
    for (const m of a.manifests) {
      const ref = m.reference ?? digestOf(m.body);
      const put = await request(`${registry.url}/v2/${repo}/manifests/${ref}`, {
        method: 'PUT',
        body: m.body,
        headers: { 'content-type': m.mediaType },
      });
      const text = await put.body.text();
      if (put.statusCode !== 201) throw new Error(`PUT ${repo}:${ref}: HTTP ${put.statusCode} ${text}`);
    }
  }
}

beforeAll(async () => {
  [registry, sigstore] = await Promise.all([startRegistry(), startMockSigstore()]);
  const publicKeyFile = join(dir, 'prod-signing.pub');
  writeFileSync(publicKeyFile, key.pem);
  const trustedRoot = join(dir, 'trusted_root.json');
  writeFileSync(trustedRoot, JSON.stringify(sigstore.trustedRoot));
  const config = buildConfig({
    upstream: { url: registry.url },
    signatures: [
      { name: 'prod-signed', repositories: ['prod/**'], keys: [publicKeyFile] },
      { name: 'ci-signed', repositories: ['ci/**'], keyless: [{ issuer: GH, subject: WORKFLOW }], trustedRoot },
    ],
  });
  upstreams = createUpstreams(config, silentLogger());
  trust = createTrust(config, upstreams, silentLogger())!;
});

afterAll(async () => {
  await Promise.all((upstreams ?? []).map((u) => u.close()));
  await Promise.all([registry?.stop(), sigstore?.close()]);
});

describe('discovery on Distribution', () => {
  it("cosign's .sig tag: signed verifies, unsigned and signed-for-another-digest do not", async () => {
    const signed = image('reg-signed');
    const unsigned = image('reg-unsigned');
    const replay = image('reg-replay');
    const payload = simpleSigningPayload(signed.digest, `${new URL(registry.url).host}/prod/app`);
    const sig = cosignSigManifest(signed.digest, [{ payload, signature: cosignSign(key.privateKey, payload) }]);
    // The same genuine signature object, pushed under the replayed image's tag.
    const replayed = cosignSigManifest(replay.digest, [{ payload, signature: cosignSign(key.privateKey, payload) }]);
    await push('prod/app', signed, sig, unsigned, replay, replayed);
    expect(await trust.verifyImage('prod/app', signed.digest)).toMatchObject({
      verified: true,
      signers: ['prod-signing'],
    });
    expect((await trust.verifyImage('prod/app', unsigned.digest)).reason).toContain('no signature found');
    expect((await trust.verifyImage('prod/app', replay.digest)).reason).toContain(
      `is for ${signed.digest}, not this digest`,
    );
  });

  it('a keyless bundle listed in the fallback tag index verifies; the referrers API answered 404', async () => {
    const img = image('reg-keyless');
    const bundle = await sigstore.sign(signStatement(img.digest), { iss: GH, sub: WORKFLOW });
    const ref = bundleReferrer({ digest: img.digest, size: img.manifest.length }, bundle);
    await push('ci/app', img, ref, fallbackIndex(img.digest, [ref.descriptor]));
    const referrers = await request(`${registry.url}/v2/ci/app/referrers/${img.digest}`);
    await referrers.body.dump();
    expect(referrers.statusCode).toBe(404);
    expect(await trust.verifyImage('ci/app', img.digest)).toMatchObject({
      verified: true,
      signers: [WORKFLOW],
    });
  });

  it('an upstream that cannot be reached is an error verdict, not "unsigned"', async () => {
    const img = image('reg-gone');
    const config = buildConfig({
      upstream: { url: 'http://127.0.0.1:9', timeout: '2s' },
      signatures: [{ name: 'p', repositories: ['**'], keys: [join(dir, 'prod-signing.pub')] }],
    });
    const list = createUpstreams(config, silentLogger());
    const v = await createTrust(config, list, silentLogger())!.verifyImage('prod/app', img.digest);
    await Promise.all(list.map((u) => u.close()));
    expect(v).toMatchObject({ verified: false, error: true });
  });
});
