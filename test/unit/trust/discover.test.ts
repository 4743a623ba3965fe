import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../../src/config/load.js';
import { createMetrics } from '../../../src/http/metrics.js';
import { silentLogger } from '../../../src/log.js';
import { discoverSignatures, nextReferrersPage } from '../../../src/trust/discover.js';
import { repoReader } from '../../../src/trust/fetch.js';
import { createTrust } from '../../../src/trust/verify.js';
import { createUpstreams, type Upstream } from '../../../src/upstream/upstream.js';
import { startReferrersRegistry, type FakeRegistry } from '../../fixtures/referrers-registry.js';
import {
  bundleReferrer,
  cosignSigManifest,
  cosignSign,
  image,
  keyPair,
  signStatement,
  simpleSigningPayload,
  startMockSigstore,
  type MockSigstore,
} from '../../support/sigstore.js';

/** What discovery reads and believes: bounded reads, digests checked, referrers of other images and attestations ignored. */

const GH = 'https://token.actions.githubusercontent.com';
const SUB = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';
const dir = mkdtempSync(join(tmpdir(), 'rap-trust-discover-'));
const key = keyPair('ec');
let registry: FakeRegistry;
let sigstore: MockSigstore;
let upstream: Upstream;

beforeAll(async () => {
  [registry, sigstore] = await Promise.all([startReferrersRegistry(), startMockSigstore()]);
  [upstream] = createUpstreams(buildConfig({ upstream: { url: registry.url } }), silentLogger()) as [Upstream];
});

afterAll(async () => {
  await upstream?.close();
  await Promise.all([registry?.close(), sigstore?.close()]);
});

describe('discoverSignatures', () => {
  it('a signature payload over 256 KiB is an error, never read into memory whole', async () => {
    const img = image('huge');
    const payload = Buffer.alloc(300 * 1024, 0x20);
    registry.push(
      'r/huge',
      img,
      cosignSigManifest(img.digest, [{ payload, signature: cosignSign(key.privateKey, payload) }]),
    );
    const found = await discoverSignatures(repoReader(upstream, 'r/huge', 5000), img.digest);
    expect(found).toMatchObject({ ok: false });
    expect(!found.ok && found.error).toContain('more than 262144 bytes');
  });

  it("a referrer whose manifest's subject is another image is not this image's signature", async () => {
    const mine = image('mine');
    const theirs = image('theirs');
    const bundle = await sigstore.sign(signStatement(theirs.digest), { iss: GH, sub: SUB });
    const ref = bundleReferrer({ digest: theirs.digest, size: theirs.manifest.length }, bundle);
    registry.push('r/mix', mine, theirs, ref);
    // The index for `mine` lists their referrer (a confused or hostile registry).
    const list = [ref.descriptor];
    const reader = repoReader(upstream, 'r/mix', 5000);
    const original = reader.get;
    reader.get = async (path, accept, max) =>
      path.includes('/referrers/')
        ? {
            status: 200,
            headers: {},
            text: JSON.stringify({
              schemaVersion: 2,
              mediaType: 'application/vnd.oci.image.index.v1+json',
              manifests: list,
            }),
          }
        : original(path, accept, max);
    expect(await discoverSignatures(reader, mine.digest)).toMatchObject({ ok: true, candidates: [] });
    expect(
      (await discoverSignatures(reader, theirs.digest)).ok && (await discoverSignatures(reader, theirs.digest)),
    ).toMatchObject({
      candidates: [{ kind: 'bundle' }],
    });
  });
});

describe('what a verified bundle must say', () => {
  it('an attestation (SLSA provenance) by the right identity is not an image signature', async () => {
    const img = image('attested');
    const statement = Buffer.from(
      JSON.stringify({
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ name: 'x', digest: { sha256: img.digest.slice(7) } }],
        predicateType: 'https://slsa.dev/provenance/v1',
        predicate: {},
      }),
    );
    registry.push(
      'ci/attested',
      img,
      bundleReferrer(
        { digest: img.digest, size: img.manifest.length },
        await sigstore.sign(statement, { iss: GH, sub: SUB }),
      ),
    );
    const root = join(dir, 'root.json');
    writeFileSync(root, JSON.stringify(sigstore.trustedRoot));
    const config = buildConfig({
      upstream: { url: registry.url },
      signatures: [{ name: 'ci', repositories: ['ci/**'], keyless: [{ issuer: GH, subject: SUB }], trustedRoot: root }],
    });
    const metrics = createMetrics();
    const trust = createTrust(config, [upstream], silentLogger(), metrics)!;
    const v = await trust.verifyImage('ci/attested', img.digest);
    expect(v.verified).toBe(false);
    expect(v.reason).toContain('a bundle is an attestation (https://slsa.dev/provenance/v1), not an image signature');
    await trust.verifyImage('ci/attested', img.digest);
    const text = await metrics.registry.metrics();
    expect(text).toContain('rap_trust_verdicts_total{result="unverified",cached="false"} 1');
    expect(text).toContain('rap_trust_verdicts_total{result="unverified",cached="true"} 1');
    expect(text).toMatch(/rap_trust_verification_seconds_count\{result="unverified"\} 1/);
  });

  it('a signature payload of the wrong type is refused even when the key verifies', async () => {
    const img = image('wrong-type');
    const payload = simpleSigningPayload(img.digest, 'r/x', 'atomic container signature');
    registry.push(
      'prod/type',
      img,
      cosignSigManifest(img.digest, [{ payload, signature: cosignSign(key.privateKey, payload) }]),
    );
    const publicKeyFile = join(dir, 'k.pub');
    writeFileSync(publicKeyFile, key.pem);
    const config = buildConfig({
      upstream: { url: registry.url },
      signatures: [{ name: 'p', repositories: ['prod/*'], keys: [publicKeyFile] }],
    });
    const v = await createTrust(config, [upstream], silentLogger())!.verifyImage('prod/type', img.digest);
    expect(v.reason).toContain(`the signed payload's type is not "cosign container image signature"`);
  });
});

describe('referrers API pagination (Link: <…>; rel="next")', () => {
  const repo = { name: 'ci/app', origin: 'http://127.0.0.1:5000' };
  const D = `sha256:${'a'.repeat(64)}`;
  const here = `/v2/ci/app/referrers/${D}`;
  it.each([
    [undefined, {}],
    [`<${here}?n=1&last=x>; rel="next"`, { path: `${here}?n=1&last=x` }],
    [`<http://127.0.0.1:5000${here}?page=2>; rel=next`, { path: `${here}?page=2` }],
    [`<${here}?page=0>; rel="prev", <${here}?page=2>; rel="next"`, { path: `${here}?page=2` }],
    [`<${here}?page=0>; rel="prev"`, {}],
    [`<http://evil.example${here}?page=2>; rel="next"`, { problem: `the next page is not a path of ${here}` }],
    [`</v2/other/referrers/${D}>; rel="next"`, { problem: `the next page is not a path of ${here}` }],
  ])('%s', (link, want) => {
    expect(nextReferrersPage(link, repo, D)).toEqual(want);
  });

  async function keylessTrust(url: string) {
    const root = join(dir, 'paged-root.json');
    writeFileSync(root, JSON.stringify(sigstore.trustedRoot));
    const config = buildConfig({
      upstream: { url },
      signatures: [{ name: 'ci', repositories: ['ci/**'], keyless: [{ issuer: GH, subject: SUB }], trustedRoot: root }],
    });
    const list = createUpstreams(config, silentLogger());
    return { trust: createTrust(config, list, silentLogger())!, close: () => Promise.all(list.map((u) => u.close())) };
  }

  async function twoBundles(paged: FakeRegistry) {
    const img = image('paged');
    const ref = async (sub: string) =>
      bundleReferrer(
        { digest: img.digest, size: img.manifest.length },
        await sigstore.sign(signStatement(img.digest), { iss: GH, sub }),
      );
    // The first page lists someone else's signature; the required one is on the second.
    paged.push('ci/app', img, await ref('https://github.com/evil/x/.github/workflows/r.yml@refs/heads/main'));
    paged.push('ci/app', await ref(SUB));
    return img;
  }

  it('every page is read: a signature on the second page verifies', async () => {
    const paged = await startReferrersRegistry({ pageSize: 1 });
    const img = await twoBundles(paged);
    const { trust, close } = await keylessTrust(paged.url);
    const v = await trust.verifyImage('ci/app', img.digest);
    await close();
    await paged.close();
    expect(v).toMatchObject({ verified: true, signers: [SUB] });
    expect(paged.requests.filter((r) => r.includes('/referrers/'))).toHaveLength(2);
  });

  it('a next page on another host is not followed: an error verdict (refused), never "unsigned"', async () => {
    const paged = await startReferrersRegistry({ pageSize: 1, nextLink: (p) => `http://127.0.0.2:9${p}` });
    const img = await twoBundles(paged);
    const { trust, close } = await keylessTrust(paged.url);
    const v = await trust.verifyImage('ci/app', img.digest);
    await close();
    await paged.close();
    expect(v).toMatchObject({ verified: false, error: true });
    expect(v.reason).toContain('referrers of ci/app: the next page is not a path of /v2/ci/app/referrers/');
  });
});
