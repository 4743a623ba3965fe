import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/log.js';
import { createTrust, type Trust } from '../../../src/trust/verify.js';
import { trustOutcome } from '../../../src/trust/verdict.js';
import { createUpstreams, type Upstream } from '../../../src/upstream/upstream.js';
import { startReferrersRegistry, type FakeRegistry } from '../../fixtures/referrers-registry.js';
import {
  bundleReferrer,
  cosignSigManifest,
  cosignSign,
  fallbackIndex,
  image,
  keyPair,
  signStatement,
  simpleSigningPayload,
  startMockSigstore,
  type MockSigstore,
} from '../../support/sigstore.js';

/**
 * verifyImage end to end over real HTTP: signatures found through the upstream client (referrers
 * API, its fallback tag, cosign's .sig tag) and verified as cosign would, keyless ones offline
 * against a trusted root of @sigstore/mock's CA and logs.
 */

const dir = mkdtempSync(join(tmpdir(), 'rap-trust-'));
const prod = keyPair('ec');
const other = keyPair('ec');
const edKey = keyPair('ed25519');
const rsaKey = keyPair('rsa');
const GH = 'https://token.actions.githubusercontent.com';
const WORKFLOW = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';

let sigstore: MockSigstore;
let withAPI: FakeRegistry;
let withoutAPI: FakeRegistry;
const upstreams: Upstream[] = [];

function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

function trustFor(registry: FakeRegistry, signatures: unknown[]): Trust {
  const config = buildConfig({ upstream: { url: registry.url }, signatures });
  const list = createUpstreams(config, silentLogger());
  upstreams.push(...list);
  return createTrust(config, list, silentLogger())!;
}

/** A key file named `<name>.pub`: the key is called `name`. */
const byKey = (name: string, pem: string) => file(`${name}.pub`, pem);
const rootFile = () => file('trusted_root.json', JSON.stringify(sigstore.trustedRoot));
const keyPolicy = (mode = 'enforce') => ({
  name: 'prod-signed',
  repositories: ['prod/**'],
  mode,
  keys: [byKey('prod-signing', prod.pem)],
});
const keylessPolicy = (subject: Record<string, string>, issuer = GH, trustedRoot = rootFile()) => ({
  name: 'ci-signed',
  repositories: ['ci/*'],
  keyless: [{ issuer, ...subject }],
  trustedRoot,
});

/** cosign's .sig for `digest`, signed by `key` over a payload naming `payloadDigest`. */
function sig(digest: string, key = prod.privateKey, payloadDigest = digest, tamper = false) {
  const payload = simpleSigningPayload(payloadDigest, 'registry.example/prod/app');
  const signature = cosignSign(key, payload);
  const sent = tamper ? Buffer.from(payload.toString().replace('registry.example', 'registry.evil')) : payload;
  return cosignSigManifest(digest, [{ payload: sent, signature }]);
}

beforeAll(async () => {
  sigstore = await startMockSigstore();
  withAPI = await startReferrersRegistry();
  withoutAPI = await startReferrersRegistry({ referrersAPI: false });
});

afterAll(async () => {
  await Promise.all(upstreams.map((u) => u.close()));
  await Promise.all([sigstore?.close(), withAPI?.close(), withoutAPI?.close()]);
});

describe('key signatures (cosign .sig tag)', () => {
  it('signed: verified, the signer named; unsigned: refused naming image, digest and key', async () => {
    const signed = image('signed');
    const unsigned = image('unsigned');
    withoutAPI.push('prod/app', signed, sig(signed.digest), unsigned);
    const trust = trustFor(withoutAPI, [keyPolicy()]);
    const v = await trust.verifyImage('prod/app', signed.digest);
    expect(v).toMatchObject({ verified: true, signers: ['prod-signing'] });
    expect(trustOutcome('prod/app', signed.digest, v)).toEqual({ action: 'pass', recorded: [] });
    const u = await trust.verifyImage('prod/app', unsigned.digest);
    expect(u.verified).toBe(false);
    expect(u.reason).toMatch(
      /^no signature by key prod-signing: no signature found \(looked at referrers API of prod\/app, tag sha256-[0-9a-f]{64}, tag sha256-[0-9a-f]{64}\.sig\)$/,
    );
    const out = trustOutcome('prod/app', unsigned.digest, u);
    expect(out).toMatchObject({
      action: 'refuse',
      message: `prod/app@${unsigned.digest}: no signature by key prod-signing (policy prod-signed)`,
    });
  });

  it('wrong key, tampered payload and a valid signature for another digest are all refused, each saying why', async () => {
    const a = image('wrong-key');
    const b = image('tampered');
    const c = image('replayed');
    const d = image('donor');
    // cosign's tag for c holds a genuine signature by the right key, over d's digest.
    withoutAPI.push(
      'prod/app',
      a,
      sig(a.digest, other.privateKey),
      b,
      sig(b.digest, prod.privateKey, b.digest, true),
      c,
      sig(c.digest, prod.privateKey, d.digest),
    );
    const trust = trustFor(withoutAPI, [keyPolicy()]);
    const [va, vb, vc] = await Promise.all([a, b, c].map((x) => trust.verifyImage('prod/app', x.digest)));
    expect([va!.verified, vb!.verified, vc!.verified]).toEqual([false, false, false]);
    expect(va!.reason).toContain('verified with none of the required keys');
    expect(vb!.reason).toContain('verified with none of the required keys');
    expect(vc!.reason).toContain(`a signature by prod-signing is for ${d.digest}, not this digest`);
  });

  it('Ed25519 and RSA keys verify as cosign signs with them', async () => {
    const img = image('other-key-types');
    const payload = simpleSigningPayload(img.digest, 'r/prod/x');
    withoutAPI.push(
      'prod/x',
      img,
      cosignSigManifest(img.digest, [
        { payload, signature: cosignSign(edKey.privateKey, payload) },
        { payload, signature: cosignSign(rsaKey.privateKey, payload) },
      ]),
    );
    const trust = trustFor(withoutAPI, [
      { name: 'p', repositories: ['prod/**'], keys: [byKey('ed', edKey.pem), byKey('rsa', rsaKey.pem)] },
    ]);
    expect((await trust.verifyImage('prod/x', img.digest)).signers.sort()).toEqual(['ed', 'rsa']);
  });
});

describe('keyless bundles (referrers API and its fallback tag)', () => {
  let signed: ReturnType<typeof image>;
  beforeAll(async () => {
    signed = image('keyless');
    const bundle = await sigstore.sign(signStatement(signed.digest), { iss: GH, sub: WORKFLOW });
    const ref = bundleReferrer({ digest: signed.digest, size: signed.manifest.length }, bundle);
    withAPI.push('ci/app', signed, ref);
    withoutAPI.push('ci/app', signed, ref, fallbackIndex(signed.digest, [ref.descriptor]));
  });

  it('the right identity verifies offline, through the referrers API and through the fallback tag', async () => {
    for (const registry of [withAPI, withoutAPI]) {
      const v = await trustFor(registry, [keylessPolicy({ subject: WORKFLOW })]).verifyImage('ci/app', signed.digest);
      expect(v, registry.url).toMatchObject({ verified: true, signers: [WORKFLOW] });
    }
    expect(withAPI.requests).toContain(
      `GET /v2/ci/app/referrers/${signed.digest}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson`,
    );
    expect(withoutAPI.requests).toContain(`GET /v2/ci/app/manifests/${signed.digest.replace(':', '-')}`);
  });

  it("subjectRegExp is searched in the subject, as cosign --certificate-identity-regexp: anchors are the author's", async () => {
    for (const [re, want] of [
      ['^https://github\\.com/acme/', true],
      ['@refs/heads/main$', true],
      ['^https://github\\.com/acme/app$', false],
      ['^https://github\\.com/evil/', false],
    ] as const) {
      const v = await trustFor(withAPI, [keylessPolicy({ subjectRegExp: re })]).verifyImage('ci/app', signed.digest);
      expect(v.verified, re).toBe(want);
    }
  });

  it("each entry's identities count only under its own trustedRoot; every entry naming the image must be satisfied", async () => {
    const foreign = await startMockSigstore();
    const foreignRoot = file('foreign_root.json', JSON.stringify(foreign.trustedRoot));
    await foreign.close();
    const mine = keylessPolicy({ subject: WORKFLOW });
    const theirs = { ...keylessPolicy({ subject: WORKFLOW }, GH, foreignRoot), name: 'ci-foreign-root' };
    const v = await trustFor(withAPI, [mine, theirs]).verifyImage('ci/app', signed.digest);
    expect(v.policies.map((p) => [p.policy, p.satisfied])).toEqual([
      ['ci-signed', true],
      ['ci-foreign-root', false],
    ]);
    expect(v.verified).toBe(false);
    // Keys or keyless in one entry: either suffices.
    const either = { ...mine, keys: [byKey('prod-signing', prod.pem)] };
    expect(await trustFor(withAPI, [either]).verifyImage('ci/app', signed.digest)).toMatchObject({
      verified: true,
      signers: [WORKFLOW],
    });
  });

  it('a wrong subject or a wrong issuer is refused, naming the identity that did sign', async () => {
    const wrongSubject = await trustFor(withAPI, [
      keylessPolicy({ subject: WORKFLOW.replace('main', 'dev') }),
    ]).verifyImage('ci/app', signed.digest);
    expect(wrongSubject.verified).toBe(false);
    expect(wrongSubject.reason).toContain(
      `a keyless signature is by ${WORKFLOW} (issuer ${GH}), not a required identity`,
    );
    const wrongIssuer = await trustFor(withAPI, [
      keylessPolicy({ subject: WORKFLOW }, 'https://accounts.google.com'),
    ]).verifyImage('ci/app', signed.digest);
    expect(wrongIssuer.verified).toBe(false);
  });

  it('a bundle signed under another trusted root does not verify', async () => {
    const foreign = await startMockSigstore();
    const img = image('foreign-root');
    const bundle = await foreign.sign(signStatement(img.digest), { iss: GH, sub: WORKFLOW });
    await foreign.close();
    withAPI.push('ci/foreign', img, bundleReferrer({ digest: img.digest, size: img.manifest.length }, bundle));
    const v = await trustFor(withAPI, [keylessPolicy({ subject: WORKFLOW })]).verifyImage('ci/foreign', img.digest);
    expect(v.verified).toBe(false);
    expect(v.reason).toContain('a keyless bundle did not verify');
  });
});

describe("cosign's legacy keyless .sig (certificate and Rekor bundle annotations)", () => {
  async function legacy(seed: string, tamper?: (a: Record<string, string>) => void, payloadFor?: string) {
    const img = image(seed);
    const payload = simpleSigningPayload(payloadFor ?? img.digest, 'registry.example/ci/app');
    const { signature, annotations } = await sigstore.signLegacy(payload, { iss: GH, sub: WORKFLOW });
    tamper?.(annotations);
    withoutAPI.push('ci/legacy', img, cosignSigManifest(img.digest, [{ payload, signature, annotations }]));
    return img.digest;
  }

  it('verifies offline as the bundle it restates: right identity yes, wrong subject no', async () => {
    const digest = await legacy('legacy-ok');
    const right = await trustFor(withoutAPI, [keylessPolicy({ subject: WORKFLOW })]).verifyImage('ci/legacy', digest);
    expect(right).toMatchObject({ verified: true, signers: [WORKFLOW] });
    const wrong = await trustFor(withoutAPI, [keylessPolicy({ subject: 'someone@example.com' })]).verifyImage(
      'ci/legacy',
      digest,
    );
    expect(wrong.reason).toContain(`a keyless signature is by ${WORKFLOW}`);
  });

  it("a forged log entry timestamp, a missing Rekor bundle or another digest's payload is refused", async () => {
    const forged = await legacy('legacy-forged', (a) => {
      const b = JSON.parse(a['dev.sigstore.cosign/bundle']!) as { Payload: { integratedTime: number } };
      b.Payload.integratedTime += 1;
      a['dev.sigstore.cosign/bundle'] = JSON.stringify(b);
    });
    const bare = await legacy('legacy-bare', (a) => delete a['dev.sigstore.cosign/bundle']);
    const other = await legacy('legacy-other', undefined, image('legacy-elsewhere').digest);
    const trust = trustFor(withoutAPI, [keylessPolicy({ subject: WORKFLOW })]);
    const [f, b, o] = await Promise.all([forged, bare, other].map((d) => trust.verifyImage('ci/legacy', d)));
    expect(f!.reason).toContain('a keyless bundle did not verify');
    expect(b!.reason).toContain('no usable Rekor bundle annotation');
    expect(o!.reason).toContain('a keyless signature is for sha256:');
  });
});

describe('lookups, cache and modes', () => {
  it('an upstream error while looking is an error verdict: enforce refuses, audit passes and records; never cached', async () => {
    const img = image('flaky');
    withAPI.push('prod/flaky', img, sig(img.digest));
    withAPI.fail('/v2/prod/flaky/referrers/', 500);
    const trust = trustFor(withAPI, [keyPolicy()]);
    const v = await trust.verifyImage('prod/flaky', img.digest);
    expect(v).toMatchObject({ verified: false, error: true });
    expect(v.reason).toMatch(/^could not look for signatures: referrers of prod\/flaky: upstream answered HTTP 500/);
    expect(trustOutcome('prod/flaky', img.digest, v).action).toBe('refuse');
    const audit = trustFor(withAPI, [keyPolicy('audit')]);
    const out = trustOutcome('prod/flaky', img.digest, await audit.verifyImage('prod/flaky', img.digest));
    expect(out.action).toBe('pass');
    expect(out.recorded[0]).toContain('could not look for signatures');
    withAPI.fail('/v2/prod/flaky/referrers/', 404);
    expect((await trust.verifyImage('prod/flaky', img.digest)).verified).toBe(true);
  });

  it('a verdict is cached per repository and digest: the second ask makes no request', async () => {
    const img = image('cached');
    withAPI.push('prod/cached', img, sig(img.digest));
    const trust = trustFor(withAPI, [keyPolicy()]);
    await trust.verifyImage('prod/cached', img.digest);
    const before = withAPI.requests.length;
    const [again, concurrent] = await Promise.all([
      trust.verifyImage('prod/cached', img.digest),
      trust.verifyImage('prod/cached', img.digest),
    ]);
    expect(withAPI.requests.length).toBe(before);
    expect(again!.verified && concurrent!.verified).toBe(true);
  });

  it('repositories no policy names need nothing and cause no lookup; a tag is not a digest', async () => {
    const trust = trustFor(withAPI, [keyPolicy()]);
    const before = withAPI.requests.length;
    expect(trust.applies('dev/app')).toBe(false);
    expect(await trust.verifyImage('dev/app', image('x').digest)).toEqual({
      verified: true,
      signers: [],
      policies: [],
    });
    expect(withAPI.requests.length).toBe(before);
    expect((await trust.verifyImage('prod/app', 'latest')).error).toBe(true);
  });
});
