import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SignJWT, type CryptoKey } from 'jose';
import { TEST_ISSUER, testIssuerPrivateKey } from '../helpers/server.js';
import { assemble, attackerKey, ciClaims, hs256, startTarget, type Target, type TokenBody } from './harness.js';

/**
 * Forged and tampered identity tokens at /token. Every case: 401 (or 431/413 for size), an error body
 * in both OCI and OAuth2 shapes that says why, no token issued, the token never echoed, the proxy
 * keeps serving, and the upstream registry sees nothing.
 */
let t: Target;
beforeAll(async () => {
  t = await startTarget();
});
afterAll(() => t.stop());
beforeEach(() => {
  t.upstream.requests.length = 0;
});

const SCOPE = ['repository:team-a/app:pull,push'];

async function expectRefused(identity: string, reason: RegExp, user?: string): Promise<TokenBody> {
  const r = await t.tokenFor(identity, SCOPE, user);
  expect(r.status, reason.source).toBe(401);
  expect(r.body.token).toBeUndefined();
  expect(r.body.access_token).toBeUndefined();
  expect(r.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
  expect(r.body.error).toBe('invalid_grant');
  expect(r.body.error_description).toMatch(reason);
  // never echo the presented token, nor a recognisable part of its signature
  const text = JSON.stringify(r.body);
  expect(text).not.toContain(identity.slice(-20));
  return r.body;
}

describe('forged identity tokens', () => {
  it('refuses alg "none", with or without a signature part', async () => {
    await expectRefused(assemble({ alg: 'none', typ: 'JWT' }, ciClaims()), /algorithm "none" is not accepted/);
    await expectRefused(
      assemble({ alg: 'none' }, ciClaims(), () => ''),
      /not a JWT/,
    );
    await expectRefused(assemble({ alg: 'NONE' }, ciClaims()), /algorithm "NONE" is not accepted/);
  });

  it("refuses HS256 signed with the issuer's RSA public key as the HMAC secret", async () => {
    const claims = { ...ciClaims(), iss: t.rsaIssuer };
    await expectRefused(assemble({ alg: 'HS256' }, claims, hs256(t.rsaPublicPem)), /algorithm "HS256" is not accepted/);
    await expectRefused(assemble({ alg: 'HS512' }, claims, hs256(t.rsaPublicPem)), /algorithm "HS512" is not accepted/);
    // the real RS256 token of that issuer works, so the refusal is about the algorithm
    expect((await t.tokenFor(await t.mintRsa(), SCOPE)).status).toBe(200);
  });

  it('never resolves a kid as a file path or a URL', async () => {
    const evil = await attackerKey();
    for (const kid of [
      '../../../../../dev/null',
      '/etc/passwd',
      'file:///etc/passwd',
      'https://evil.test/jwks.json',
      "ci-1' OR '1'='1",
    ]) {
      const token = await new SignJWT(ciClaims()).setProtectedHeader({ alg: 'ES256', kid }).sign(evil.privateKey);
      await expectRefused(token, /signature|key/i);
    }
    // the HMAC-with-an-empty-file variant of the kid trick
    await expectRefused(
      assemble({ alg: 'HS256', kid: '../../../../../dev/null' }, ciClaims(), hs256('')),
      /algorithm "HS256"/,
    );
  });

  it('refuses tokens that bring their own key (jwk, jku, x5u, x5c)', async () => {
    const evil = await attackerKey();
    const headers: Record<string, unknown>[] = [
      { jwk: evil.jwk },
      { jku: 'https://evil.test/jwks.json' },
      { x5u: 'https://evil.test/cert.pem' },
      { x5c: ['MIIBkTCB+wIJAKHHIG...'] },
    ];
    for (const extra of headers) {
      const token = await new SignJWT(ciClaims())
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1', ...extra } as never)
        .sign(evil.privateKey);
      await expectRefused(token, new RegExp(`may not carry a "${Object.keys(extra)[0]}" header`));
    }
  });

  it('refuses a tampered payload and a signature of another key', async () => {
    const good = await t.proxy.mintIdentity();
    const [h, , s] = good.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify(ciClaims({ team: 'team-b' }))).toString('base64url')}.${s}`;
    await expectRefused(tampered, /signature/);
    const evil = await attackerKey();
    await expectRefused(
      await new SignJWT(ciClaims()).setProtectedHeader({ alg: 'ES256', kid: 'ci-1' }).sign(evil.privateKey),
      /signature/,
    );
  });

  it('refuses duplicate claims instead of guessing which one counts', async () => {
    // A correctly signed token whose payload text names "team" twice: parsers disagree on such input.
    const privateKey = await testIssuerPrivateKey();
    const payload = JSON.stringify(ciClaims()).replace(/^\{/, '{"team":"team-b",');
    const token = await signRaw({ alg: 'ES256', kid: 'ci-1' }, payload, privateKey);
    await expectRefused(token, /repeats the member "team"/);
    const dupHeader = await signRaw(
      '{"alg":"ES256","kid":"ci-1","alg":"none"}',
      JSON.stringify(ciClaims()),
      privateKey,
    );
    await expectRefused(dupHeader, /repeats the member "alg"/);
  });

  it('refuses garbage and empty passwords with a message a user can act on', async () => {
    await expectRefused('hunter2', /not a JWT/);
    await expectRefused('a.b.c', /not a JWT/);
    await expectRefused('eyJ.eyJ.sig', /not a JWT/);
    await expectRefused(`${'A'.repeat(40)}.${'B'.repeat(40)}.${'C'.repeat(40)}`, /not a JWT/);
  });

  it('refuses huge tokens before parsing them, over GET (431) and POST (401 with the limit)', async () => {
    const huge = assemble({ alg: 'ES256', kid: 'ci-1' }, ciClaims({ pad: 'x'.repeat(20_000) }));
    const get = await fetch(`${t.proxy.url}/token?service=registry.test`, {
      headers: { authorization: t.basic(huge) },
    });
    expect(get.status).toBe(431);
    expect(((await get.json()) as TokenBody).errors?.[0]?.message).toMatch(/headers larger than 16384 bytes/);
    const post = await fetch(`${t.proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'x',
        password: huge,
        service: 'registry.test',
      }).toString(),
    });
    expect(post.status).toBe(401);
    expect(((await post.json()) as TokenBody).error_description).toMatch(/larger than 16384 bytes/);
    const bigForm = await fetch(`${t.proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `password=${'x'.repeat(70_000)}`,
    });
    expect(bigForm.status).toBe(413);
  });

  it('survives deeply nested JSON in a correctly signed token and still decides by policy', async () => {
    const privateKey = await testIssuerPrivateKey();
    const depth = 4000;
    const payload = JSON.stringify(ciClaims()).replace(/\}$/, `,"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    const token = await signRaw({ alg: 'ES256', kid: 'ci-1' }, payload, privateKey);
    const r = await t.tokenFor(token, SCOPE);
    expect(r.status).toBe(200);
    // objects nest deeper per byte in a POST form (no Basic re-encoding): ~11 KiB of payload
    const deepObj = JSON.stringify(ciClaims()).replace(/\}$/, `,"deep":${'{"a":'.repeat(1800)}1${'}'.repeat(1800)}}`);
    const r2 = await fetch(`${t.proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'password',
        username: 'x',
        password: await signRaw({ alg: 'ES256', kid: 'ci-1' }, deepObj, privateKey),
        service: 'registry.test',
        scope: SCOPE[0]!,
      }).toString(),
    });
    expect(r2.status).toBe(200);
    expect(((await r2.json()) as TokenBody).access_token).toBeTruthy();
    // and the proxy is still healthy
    expect((await fetch(`${t.proxy.url}/healthz`)).status).toBe(200);
  });
});

describe('issuer confusion', () => {
  it('refuses an issuer that is not configured, including near-misses of configured ones', async () => {
    const evil = await attackerKey();
    for (const iss of [
      'https://evil.test',
      `${TEST_ISSUER}/`,
      TEST_ISSUER.toUpperCase(),
      ` ${TEST_ISSUER}`,
      'http://ci.test',
      t.proxy.url,
    ]) {
      const token = await new SignJWT(ciClaims({ iss }))
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
        .sign(evil.privateKey);
      await expectRefused(token, /is not configured on this proxy/);
    }
  });

  it('refuses a token of one issuer presented for another', async () => {
    // the username names the ci issuer, the token comes from rsa
    await expectRefused(await t.mintRsa(), /username names issuer "ci" but the token comes from "rsa"/, 'ci');
    // a token claiming the ci issuer but signed with the rsa issuer's key
    const forged = await new SignJWT(ciClaims()).setProtectedHeader({ alg: 'RS256', kid: 'ci-1' }).sign(t.rsaPrivate);
    await expectRefused(forged, /signature|key/i);
    // and an rsa token with the ci audience is fine only for its own issuer name
    expect((await t.tokenFor(await t.mintRsa(), SCOPE, 'rsa')).status).toBe(200);
  });

  it('refuses our own registry and refresh tokens as identity tokens', async () => {
    const ours = await t.registryToken(SCOPE);
    await expectRefused(ours, /is not configured on this proxy/);
  });

  it('refuses wrong audience, expiry and not-yet-valid tokens', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await signCi(ciClaims({ aud: 'other.test' })), /audience/);
    await expectRefused(await signCi(ciClaims({ exp: now - 120 })), /expired/);
    await expectRefused(await signCi(ciClaims({ nbf: now + 3600 })), /not (yet )?valid|nbf/i);
    await expectRefused(await signCi(ciClaims({ exp: undefined })), /exp/);
  });
});

afterAll(() => {
  expect(t.upstream.requests).toHaveLength(0);
});

async function signRaw(header: Record<string, unknown> | string, payload: string, key: CryptoKey): Promise<string> {
  const { subtle } = globalThis.crypto;
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header)).toString('base64url');
  const p = Buffer.from(payload).toString('base64url');
  const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new TextEncoder().encode(`${h}.${p}`));
  return `${h}.${p}.${Buffer.from(sig).toString('base64url')}`;
}

async function signCi(claims: Record<string, unknown>): Promise<string> {
  const clean = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
  return signRaw({ alg: 'ES256', kid: 'ci-1' }, JSON.stringify(clean), await testIssuerPrivateKey());
}
