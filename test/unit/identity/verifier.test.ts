import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac, createPublicKey } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, base64url, type CryptoKey } from 'jose';
import { createIdentityVerifier } from '../../../src/identity/verifier.js';
import { IdentityError, type IdentityVerifier } from '../../../src/identity/types.js';
import type { IssuerConfig } from '../../../src/config/types.js';
import { silentLogger } from '../../../src/log.js';

const ISS = 'https://issuer.test';
const AUD = 'registry.test';
let rsaPrivate: CryptoKey;
let rsaPublicPem: string;
let otherPrivate: CryptoKey;
let dir: string;
let verifier: IdentityVerifier;
const nowMs = Date.now();

function issuer(extra: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    name: 'ci',
    issuer: ISS,
    audiences: [AUD],
    jwksFile: join(dir, 'jwks.json'),
    tokenReview: false,
    legacyTokens: false,
    clockSkew: 30,
    timeout: 5000,
    ...extra,
  };
}

async function sign(
  claims: Record<string, unknown>,
  opts: { key?: CryptoKey; header?: Record<string, unknown> } = {},
): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({
    iss: ISS,
    aud: [AUD],
    sub: 'repo:acme/web:ref:refs/heads/main',
    iat: now,
    exp: now + 300,
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1', ...(opts.header ?? {}) })
    .sign(opts.key ?? rsaPrivate);
}

async function failure(token: string, opts?: { issuerName?: string }, v = verifier): Promise<IdentityError> {
  try {
    await v.verify(token, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return err as IdentityError;
  }
  throw new Error('expected verification to fail');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-id-'));
  const rsa = await generateKeyPair('RS256', { extractable: true });
  rsaPrivate = rsa.privateKey;
  rsaPublicPem = await exportSPKI(rsa.publicKey);
  otherPrivate = (await generateKeyPair('RS256')).privateKey;
  writeFileSync(
    join(dir, 'jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', use: 'sig' }] }),
  );
  writeFileSync(join(dir, 'pub.pem'), rsaPublicPem);
  verifier = createIdentityVerifier([issuer()], { logger: silentLogger(), now: () => nowMs });
});

afterAll(async () => {
  await verifier.close?.();
});

describe('identity token verification', () => {
  it('accepts a valid token and maps its identity', async () => {
    const id = await verifier.verify(await sign({}));
    expect(id.issuerName).toBe('ci');
    expect(id.subject).toBe('repo:acme/web:ref:refs/heads/main');
    expect(id.issuer).toBe(ISS);
  });

  it('refuses an expired token, saying when it expired', async () => {
    const now = Math.floor(nowMs / 1000);
    const err = await failure(await sign({ exp: now - 120, iat: now - 600 }));
    expect(err.reason).toBe('expired');
    expect(err.message).toMatch(/expired at \d{4}-/);
  });

  it('tolerates clock skew within clockSkew only', async () => {
    const now = Math.floor(nowMs / 1000);
    await expect(verifier.verify(await sign({ exp: now - 10 }))).resolves.toBeTruthy();
    expect((await failure(await sign({ exp: now - 40 }))).reason).toBe('expired');
  });

  it('refuses a token whose nbf is in the future', async () => {
    const now = Math.floor(nowMs / 1000);
    expect((await failure(await sign({ nbf: now + 600 }))).reason).toBe('not_yet_valid');
  });

  it('refuses the wrong audience and names the expected one', async () => {
    const err = await failure(await sign({ aud: ['https://github.com/acme'] }));
    expect(err.reason).toBe('wrong_audience');
    expect(err.message).toContain('"registry.test"');
  });

  it('refuses a token without aud or without exp', async () => {
    expect((await failure(await sign({ aud: undefined }))).reason).toBe('wrong_audience');
    expect((await failure(await sign({ exp: undefined }))).reason).toBe('missing_claim');
  });

  it('refuses an issuer that is not configured, without any network call', async () => {
    const err = await failure(await sign({ iss: 'https://evil.test' }));
    expect(err.reason).toBe('unknown_issuer');
    expect(err.message).toContain('https://evil.test');
    // near-misses of the configured issuer are different issuers
    expect((await failure(await sign({ iss: `${ISS}/` }))).reason).toBe('unknown_issuer');
    expect((await failure(await sign({ iss: ISS.toUpperCase() }))).reason).toBe('unknown_issuer');
  });

  it('refuses an unknown kid and a signature by another key', async () => {
    expect((await failure(await sign({}, { header: { kid: 'nope' } }))).reason).toBe('unknown_key');
    expect((await failure(await sign({}, { key: otherPrivate }))).reason).toBe('bad_signature');
  });

  it('refuses alg none', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', kid: 'k1' }));
    const now = Math.floor(nowMs / 1000);
    const payload = base64url.encode(JSON.stringify({ iss: ISS, aud: AUD, sub: 'x', exp: now + 60 }));
    // an empty signature fails the compact-JWS shape check, before the header is read
    const err = await failure(`${header}.${payload}.`);
    expect(err.reason).toBe('malformed');
    const err2 = await failure(`${header}.${payload}.c2ln`);
    expect(err2.reason).toBe('unsupported_algorithm');
  });

  it('refuses HS256 signed with the RSA public key as the HMAC secret', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'HS256', kid: 'k1' }));
    const now = Math.floor(nowMs / 1000);
    const payload = base64url.encode(JSON.stringify({ iss: ISS, aud: AUD, sub: 'x', exp: now + 60 }));
    for (const secret of [rsaPublicPem, createPublicKey(rsaPublicPem).export({ type: 'spki', format: 'der' })]) {
      const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      expect((await failure(`${header}.${payload}.${sig}`)).reason).toBe('unsupported_algorithm');
    }
  });

  it('refuses a tampered payload', async () => {
    const token = await sign({});
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.sub = 'repo:acme/admin:ref:refs/heads/main';
    const forged = `${h}.${base64url.encode(JSON.stringify(claims))}.${s}`;
    expect((await failure(forged)).reason).toBe('bad_signature');
  });

  it('refuses garbage and oversized input', async () => {
    for (const junk of ['', 'abc', 'a.b', 'a.b.c.d', '....', 'not a jwt at all', '{"alg":"none"}', 'eyJ.eyJ.eyJ']) {
      expect((await failure(junk)).reason).toMatch(/malformed/);
    }
    const huge = `${'a'.repeat(20_000)}.${'b'.repeat(10)}.${'c'.repeat(10)}`;
    expect((await failure(huge)).reason).toBe('too_large');
  });

  it('refuses tokens that name their own keys (jwk, jku, x5u, x5c) and unknown crit', async () => {
    const pub = await exportJWK(createPublicKey(rsaPublicPem));
    for (const header of [
      { jwk: pub },
      { jku: 'https://evil.test/jwks' },
      { x5u: 'https://evil.test/c.pem' },
      { x5c: ['MIIB'] },
    ]) {
      expect((await failure(await sign({}, { header }))).reason).toBe('forbidden_header');
    }
    // jose refuses to sign an unknown crit, so sign this one by hand
    const now = Math.floor(nowMs / 1000);
    const h = base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'k1', crit: ['x-custom'], 'x-custom': 1 }));
    const p = base64url.encode(JSON.stringify({ iss: ISS, aud: AUD, sub: 's', exp: now + 60 }));
    const sig = Buffer.from(
      await crypto.subtle.sign('RSASSA-PKCS1-v1_5', rsaPrivate, new TextEncoder().encode(`${h}.${p}`)),
    ).toString('base64url');
    expect((await failure(`${h}.${p}.${sig}`)).reason).toBe('forbidden_header');
  });

  it('never echoes the token in error messages', async () => {
    const token = await sign({ aud: ['other'] });
    const err = await failure(token);
    expect(err.message).not.toContain(token);
    expect(err.message).not.toContain(token.split('.')[2]!);
  });

  it('enforces the issuer named by the Basic username', async () => {
    const two = createIdentityVerifier([issuer(), issuer({ name: 'other', issuer: 'https://other.test' })], {
      logger: silentLogger(),
      now: () => nowMs,
    });
    const token = await sign({});
    expect((await failure(token, { issuerName: 'other' }, two)).reason).toBe('issuer_mismatch');
    await expect(two.verify(token, { issuerName: 'ci' })).resolves.toMatchObject({ issuerName: 'ci' });
    // the cached result is subject to the same check
    expect((await failure(token, { issuerName: 'other' }, two)).reason).toBe('issuer_mismatch');
    // a username that names no issuer is ignored (docker login sends anything)
    await expect(two.verify(token, { issuerName: 'oauth2accesstoken' })).resolves.toMatchObject({ issuerName: 'ci' });
  });

  it('caches a verification until the token expires, then refuses it', async () => {
    let t = Date.now();
    const v = createIdentityVerifier([issuer()], { logger: silentLogger(), now: () => t });
    const now = Math.floor(t / 1000);
    const token = await new SignJWT({ iss: ISS, aud: AUD, sub: 's', exp: now + 60 })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .sign(rsaPrivate);
    const a = await v.verify(token);
    expect(await v.verify(token)).toBe(a); // same object: served from the cache
    t += 120_000;
    expect((await failure(token, undefined, v)).reason).toBe('expired');
  });

  it('tells what a token proved while it is cached, without verifying anything', async () => {
    let t = Date.now();
    const two = createIdentityVerifier([issuer(), issuer({ name: 'other', issuer: 'https://other.test' })], {
      logger: silentLogger(),
      now: () => t,
    });
    const now = Math.floor(t / 1000);
    const token = await new SignJWT({ iss: ISS, aud: AUD, sub: 's', exp: now + 60 })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .sign(rsaPrivate);
    const forged = await sign({}, { key: otherPrivate });
    // never verified: unknown, whether valid or not
    expect(two.cached?.(token)).toBeUndefined();
    await failure(forged, undefined, two);
    expect(two.cached?.(forged)).toBeUndefined();
    const who = await two.verify(token);
    expect(two.cached?.(token)).toBe(who);
    expect(two.cached?.(token, { issuerName: 'ci' })).toBe(who);
    // a username naming another issuer is a refusal, left to verify()
    expect(two.cached?.(token, { issuerName: 'other' })).toBeUndefined();
    t += 120_000;
    expect(two.cached?.(token)).toBeUndefined();
  });

  it('accepts PEM public keys as jwksFile, whatever the kid', async () => {
    const v = createIdentityVerifier([issuer({ jwksFile: join(dir, 'pub.pem') })], {
      logger: silentLogger(),
      now: () => nowMs,
    });
    await expect(v.verify(await sign({}, { header: { kid: 'anything' } }))).resolves.toMatchObject({
      issuerName: 'ci',
    });
    expect((await failure(await sign({}, { key: otherPrivate }), undefined, v)).reason).toBe('bad_signature');
  });

  it('accepts ES256 and EdDSA issuers', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const kp = await generateKeyPair(alg, { extractable: true });
      const file = join(dir, `${alg}.json`);
      writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: alg }] }));
      const v = createIdentityVerifier([issuer({ jwksFile: file })], { logger: silentLogger(), now: () => nowMs });
      const now = Math.floor(nowMs / 1000);
      const t = await new SignJWT({ iss: ISS, aud: AUD, sub: 's', exp: now + 60 })
        .setProtectedHeader({ alg, kid: alg })
        .sign(kp.privateKey);
      await expect(v.verify(t)).resolves.toMatchObject({ subject: 's' });
    }
  });
});
