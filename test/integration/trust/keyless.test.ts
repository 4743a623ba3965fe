import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startReferrersRegistry, type FakeRegistry } from '../../fixtures/referrers-registry.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { pushSmallBlob } from '../../support/seed.js';
import {
  bundleReferrer,
  cosignSigManifest,
  digestOf,
  fallbackIndex,
  image,
  signStatement,
  simpleSigningPayload,
  startMockSigstore,
  type Artifact,
  type MockSigstore,
} from '../../support/sigstore.js';
import { outcome, requireTool } from '../../support/tools.js';

/**
 * Keyless signatures through the proxy's signature guard, end to end (issue 22): Sigstore bundles
 * made by sigstore-js against @sigstore/mock's Fulcio CA and Rekor log, verified offline against a
 * trusted_root.json of their keys.
 * - In front of a real Distribution registry (2.8: no referrers API, so bundles are found through
 *   the `sha256-<hex>` fallback tag, and cosign's legacy keyless `.sig` tag): skopeo pulls the image
 *   the right workflow signed; one signed by another subject is refused 403 DENIED naming image,
 *   digest and the required identity, before the registry serves a blob of it.
 * - In front of a registry that serves the OCI 1.1 referrers API (a fake speaking its wire format:
 *   Distribution 2.8 has none): the guard finds the bundle through `GET /v2/<name>/referrers/<digest>`
 *   alone, and the referrers API stays readable to clients.
 */

const GH = 'https://token.actions.githubusercontent.com';
const ACME = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';
const EVIL = 'https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main';
// [.] rather than a backslash: skopeo's log escapes backslashes, and the message is asserted as printed.
const SUBJECT_RE = '^https://github[.]com/acme/';
const REQUIRED = `keyless identity ${GH}, subject matching ${SUBJECT_RE}`;
const POLICY = `
rules:
  - name: ci-may-pull
    actions: [pull]
    when: identity.issuerName == "ci"
`;
const dir = mkdtempSync(join(tmpdir(), 'rap-keyless-'));
const OCI = 'application/vnd.oci.image.manifest.v1+json';

let sigstore: MockSigstore;
let trustedRoot: string;

const signatures = () => [
  {
    name: 'ci-signed',
    repositories: ['ci/**'],
    keyless: [{ issuer: GH, subjectRegExp: SUBJECT_RE }],
    trustedRoot,
  },
];

/** A bundle over `img` by the workflow `sub`, attached as cosign attaches it: an OCI 1.1 referrer. */
async function signedBy(img: ReturnType<typeof image>, sub: string) {
  const bundle = await sigstore.sign(signStatement(img.digest), { iss: GH, sub });
  return bundleReferrer({ digest: img.digest, size: img.manifest.length }, bundle);
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function get(proxy: TestProxy, path: string, accept = OCI): Promise<Answer> {
  const token = await proxy.registryToken([`repository:${path.split('/').slice(2, -2).join('/')}:pull`]);
  const r = await request(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${token}`, accept } });
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

const denied = (a: Answer) => (JSON.parse(a.text) as { errors: { code: string; message: string }[] }).errors[0];

beforeAll(async () => {
  sigstore = await startMockSigstore();
  trustedRoot = join(dir, 'trusted_root.json');
  writeFileSync(trustedRoot, JSON.stringify(sigstore.trustedRoot));
});
afterAll(async () => {
  await sigstore?.close();
});

describe('keyless through the guard, in front of Distribution 2.8 (fallback tag and legacy .sig)', () => {
  let stack: RegistryAndProxy;
  let skopeo: string;
  const good = image('keyless-good');
  const evil = image('keyless-evil');
  const legacy = image('keyless-legacy');

  async function push(repo: string, ...artifacts: Artifact[]): Promise<void> {
    for (const a of artifacts) {
      for (const b of a.blobs) await pushSmallBlob(stack.registry.url, repo, b);
      for (const m of a.manifests) {
        const ref = m.reference ?? digestOf(m.body);
        const put = await request(`${stack.registry.url}/v2/${repo}/manifests/${ref}`, {
          method: 'PUT',
          body: m.body,
          headers: { 'content-type': m.mediaType },
        });
        const text = await put.body.text();
        if (put.statusCode !== 201) throw new Error(`PUT ${repo}:${ref}: HTTP ${put.statusCode} ${text}`);
      }
    }
  }

  const pull = async (ref: string) => {
    const creds = `x:${await stack.proxy.mintIdentity({})}`;
    const args = ['copy', '--src-tls-verify=false', '--src-creds', creds];
    const dest = `dir:${join(dir, `pulled-${ref.replace(/[/:]/g, '-')}`)}`;
    return outcome(skopeo, [...args, `docker://${stack.proxy.host}/${ref}`, dest]);
  };

  beforeAll(async () => {
    skopeo = requireTool('skopeo');
    stack = await startRegistryAndProxy({ policy: POLICY, config: { signatures: signatures() } });
    const [goodSig, evilSig] = await Promise.all([signedBy(good, ACME), signedBy(evil, EVIL)]);
    const payload = simpleSigningPayload(legacy.digest, `${new URL(stack.registry.url).host}/ci/app`);
    const legacySig = await sigstore.signLegacy(payload, { iss: GH, sub: ACME });
    await push(
      'ci/app',
      good,
      goodSig,
      fallbackIndex(good.digest, [goodSig.descriptor]),
      evil,
      evilSig,
      fallbackIndex(evil.digest, [evilSig.descriptor]),
      legacy,
      cosignSigManifest(legacy.digest, [
        { payload, signature: legacySig.signature, annotations: legacySig.annotations },
      ]),
    );
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('Distribution 2.8 has no referrers API (so the fallback tag is what it serves)', async () => {
    const r = await request(`${stack.registry.url}/v2/ci/app/referrers/${good.digest}`);
    await r.body.dump();
    expect(r.statusCode).toBe(404);
  });

  it('skopeo pulls the images the acme workflow signed (bundle and legacy keyless .sig)', async () => {
    for (const tag of ['keyless-good', 'keyless-legacy']) {
      const r = await pull(`ci/app:${tag}`);
      expect(r.ok, r.out).toBe(true);
    }
  });

  it('an image signed by another subject is refused 403 DENIED naming image, digest and requirement; no blob served', async () => {
    const before = stack.registry.logs().length;
    const r = await pull('ci/app:keyless-evil');
    expect(r.ok).toBe(false);
    const message = `ci/app@${evil.digest}: no signature by ${REQUIRED} (policy ci-signed)`;
    // skopeo: reading manifest keyless-evil in 127.0.0.1:PORT/ci/app: denied: ci/app@sha256:…: no signature by …
    expect(r.out).toContain(`denied: ${message}`);
    const a = await get(stack.proxy, `/v2/ci/app/manifests/${evil.digest}`);
    expect(a.status).toBe(403);
    expect(denied(a)).toMatchObject({ code: 'DENIED', message });
    await new Promise((res) => setTimeout(res, 150));
    const log = stack.registry.logs().slice(before);
    for (const blob of evil.blobs) expect(log).not.toContain(`/blobs/${digestOf(blob)}`);
    // The proxy's log says who did sign.
    expect(stack.proxy.logs.join('\n')).toContain(`a keyless signature is by ${EVIL} (issuer ${GH})`);
  });
});

describe('keyless through the guard, in front of a registry with the OCI 1.1 referrers API', () => {
  let registry: FakeRegistry;
  let proxy: TestProxy;
  const good = image('referrers-good');
  const evil = image('referrers-evil');

  beforeAll(async () => {
    registry = await startReferrersRegistry();
    proxy = await startProxy({ upstream: registry.url, policy: POLICY, config: { signatures: signatures() } });
    // No fallback tag: the referrers API is the only place these bundles are listed.
    registry.push('ci/app', good, await signedBy(good, ACME), evil, await signedBy(evil, EVIL));
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    await registry?.close();
  });

  it('the bundle is found through GET /v2/<name>/referrers/<digest>: the signed image is served by tag', async () => {
    const a = await get(proxy, '/v2/ci/app/manifests/referrers-good');
    expect(a.status, a.text).toBe(200);
    expect(a.headers['docker-content-digest']).toBe(good.digest);
    expect(registry.requests).toContain(
      `GET /v2/ci/app/referrers/${good.digest}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson`,
    );
    expect(registry.requests).not.toContain(`GET /v2/ci/app/manifests/${good.digest.replace(':', '-')}`);
    // The upstream was asked for the manifest by digest, never by the tag the client named.
    expect(registry.requests.filter((r) => r.startsWith('GET /v2/ci/app/manifests/referrers-good'))).toEqual([]);
  });

  it('another subject: 403 DENIED naming image, digest and requirement', async () => {
    const a = await get(proxy, '/v2/ci/app/manifests/referrers-evil');
    expect(a.status).toBe(403);
    expect(denied(a)).toMatchObject({
      code: 'DENIED',
      message: `ci/app@${evil.digest}: no signature by ${REQUIRED} (policy ci-signed)`,
    });
  });

  it('the referrers API itself stays readable through the proxy, its headers intact', async () => {
    const path = `/v2/ci/app/referrers/${good.digest}?artifactType=${encodeURIComponent('application/vnd.dev.sigstore.bundle.v0.3+json')}`;
    const a = await get(proxy, path, 'application/vnd.oci.image.index.v1+json');
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/vnd.oci.image.index.v1+json');
    expect(a.headers['oci-filters-applied']).toBe('artifactType');
    const index = JSON.parse(a.text) as { manifests: { artifactType: string }[] };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.artifactType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
  });
});
