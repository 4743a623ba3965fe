import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, SignJWT } from 'jose';
import { DEFAULT_REFRESH_TTL, issueRefreshToken, refreshExpiry } from '../../src/token/issue.js';
import { buildConfig } from '../../src/config/load.js';
import { futureIssuedAt } from '../../src/identity/checks.js';
import type { Identity } from '../../src/identity/types.js';
import { startProxy, TEST_ISSUER, testIssuerPrivateKey } from '../helpers/server.js';
import { startTarget, type Target } from './harness.js';

/**
 * Issue 9 item 8: a 10-year identity token gave a 10-year refresh token, never re-checked on use;
 * and an identity token claiming to be issued in the future was accepted. Refresh tokens now live at
 * most `tokens.refreshTTL` (default 12 h; never past the identity's exp), are re-checked on use (age
 * against today's refreshTTL, issuer still configured for the same `iss`, not a TokenReview issuer,
 * policy evaluated afresh), and a future `iat` beyond clockSkew is refused with the reason.
 */

const HOUR = 3600;
const YEAR = 365 * 24 * HOUR;
const nowS = () => Math.floor(Date.now() / 1000);
type Body = {
  token?: string;
  refresh_token?: string;
  errors?: { code: string; message: string }[];
  error?: string;
  error_description?: string;
};

async function getToken(t: Target, identity: string, offline = true): Promise<{ status: number; body: Body }> {
  const q = new URLSearchParams({
    service: 'registry.test',
    scope: 'repository:team-a/app:pull',
    ...(offline ? { offline_token: 'true' } : {}),
  });
  const r = await fetch(`${t.proxy.url}/token?${q}`, { headers: { authorization: t.basic(identity) } });
  return { status: r.status, body: (await r.json()) as Body };
}

async function refreshGrant(t: Target, refreshToken: string): Promise<{ status: number; body: Body }> {
  const r = await fetch(`${t.proxy.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      service: 'registry.test',
      scope: 'repository:team-a/app:pull',
      client_id: 'docker',
    }).toString(),
  });
  return { status: r.status, body: (await r.json()) as Body };
}

/** A `ci` identity token with the given iat/exp, signed by the test issuer's real key. */
async function ciToken(iat: number, exp: number): Promise<string> {
  return new SignJWT({ team: 'team-a', iat, exp })
    .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
    .setIssuer(TEST_ISSUER)
    .setAudience('registry.test')
    .setSubject('job-42')
    .sign(await testIssuerPrivateKey());
}

function ciIdentity(extra: Partial<Identity> = {}): Identity {
  return {
    issuerName: 'ci',
    issuer: TEST_ISSUER,
    subject: 'job-42',
    claims: { team: 'team-a' },
    expiresAt: nowS() + 10 * YEAR,
    ...extra,
  };
}

describe('refresh token lifetime', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget();
  });
  afterAll(() => t.stop());

  it('a 10-year identity token yields a refresh token of at most 12 hours (the default)', async () => {
    const before = nowS();
    const r = await getToken(t, await ciToken(before, before + 10 * YEAR));
    expect(r.status).toBe(200);
    const exp = decodeJwt(r.body.refresh_token!).exp!;
    expect(exp).toBeGreaterThan(before);
    expect(exp).toBeLessThanOrEqual(nowS() + 12 * HOUR);
    // and it works, through a fresh policy decision
    const used = await refreshGrant(t, r.body.refresh_token!);
    expect(used.status).toBe(200);
    expect(decodeJwt(used.body.token!)).toMatchObject({
      sub: 'ci:job-42',
      access: [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }],
    });
  });

  it('a short identity token still bounds it', async () => {
    const now = nowS();
    const r = await getToken(t, await ciToken(now, now + 600));
    expect(decodeJwt(r.body.refresh_token!).exp).toBe(now + 600);
  });

  it('refuses, on use, a refresh token older than the refreshTTL in force (e.g. issued under a longer one)', async () => {
    const keys = t.proxy.runtime.keys;
    const opts = { issuer: t.proxy.config.publicURL, service: 'registry.test', ttl: 300, refreshTTL: 7 * 24 * HOUR };
    const old = (await issueRefreshToken(keys, ciIdentity(), { ...opts, now: () => (nowS() - 13 * HOUR) * 1000 }))!;
    expect(decodeJwt(old).exp).toBeGreaterThan(nowS()); // still unexpired by its own exp
    const r = await refreshGrant(t, old);
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
    expect(r.body.error).toBe('invalid_grant');
    expect(r.body.errors?.[0]?.message).toMatch(/refresh token expired.*log in again/);
    expect(t.upstream.requests).toEqual([]);
  });

  it('refuses a refresh token whose issuer name now stands for another issuer URL', async () => {
    const keys = t.proxy.runtime.keys;
    const token = (await issueRefreshToken(keys, ciIdentity({ issuer: 'https://old-ci.test' }), {
      issuer: t.proxy.config.publicURL,
      service: 'registry.test',
      ttl: 300,
    }))!;
    const r = await refreshGrant(t, token);
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0]?.message).toMatch(/no longer configured/);
  });
});

describe('refresh tokens against the configuration in force', () => {
  it('tokens.refreshTTL caps them; refreshTTL 0 issues none and refuses every refresh grant', async () => {
    const t = await startTarget({ tokens: { refreshTTL: '1h' } });
    try {
      const r = await getToken(t, await ciToken(nowS(), nowS() + YEAR));
      const claims = decodeJwt(r.body.refresh_token!);
      expect(claims.exp! - claims.iat!).toBe(HOUR);
    } finally {
      await t.stop();
    }
    const off = await startTarget({ tokens: { refreshTTL: 0 } });
    try {
      const r = await getToken(off, await ciToken(nowS(), nowS() + YEAR));
      expect(r.status).toBe(200);
      expect(r.body.refresh_token).toBeUndefined();
      const forged = (await issueRefreshToken(off.proxy.runtime.keys, ciIdentity(), {
        issuer: off.proxy.config.publicURL,
        service: 'registry.test',
        ttl: 300,
      }))!;
      const used = await refreshGrant(off, forged);
      expect(used.status).toBe(401);
      expect(used.body.errors?.[0]?.message).toMatch(/turned off/);
    } finally {
      await off.stop();
    }
  });

  it('an issuer now checked with TokenReview no longer honours its refresh tokens (revocation must bite)', async () => {
    // Two configurations of one deployment (same signing key and publicURL): before and after the
    // `ci` issuer gained tokenReview. A refresh token from before must not bypass the review.
    const keyFile = join(mkdtempSync(join(tmpdir(), 'rap-refresh-')), 'signing.pem');
    writeFileSync(
      keyFile,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    );
    const shared = {
      publicURL: 'http://registry.test.local',
      service: 'registry.test',
      tokens: { signingKeyFile: keyFile },
      limits: { tokenPerClient: { rate: 0 } },
    };
    const before = await startProxy({ config: shared });
    let refreshToken: string;
    try {
      const q = new URLSearchParams({
        service: 'registry.test',
        scope: 'repository:team-a/app:pull',
        offline_token: 'true',
      });
      const r = await fetch(`${before.url}/token?${q}`, {
        headers: { authorization: `Basic ${Buffer.from(`x:${await before.mintIdentity()}`).toString('base64')}` },
      });
      refreshToken = ((await r.json()) as Body).refresh_token!;
      expect(refreshToken).toBeDefined();
    } finally {
      await before.stop();
    }
    const after = await startProxy({
      withTestIssuer: false,
      config: {
        ...shared,
        issuers: [
          {
            name: 'ci',
            issuer: TEST_ISSUER,
            jwksFile: join(before.dir, 'ci-jwks.json'),
            tokenReview: { url: 'https://127.0.0.1:9', cacheTTL: '1s' },
          },
        ],
      },
    });
    try {
      const r = await fetch(`${after.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          service: 'registry.test',
          scope: 'repository:team-a/app:pull',
        }).toString(),
      });
      const body = (await r.json()) as Body;
      expect(r.status).toBe(401);
      expect(body.errors?.[0]?.code).toBe('UNAUTHORIZED');
      expect(body.errors?.[0]?.message).toMatch(/TokenReview/);
    } finally {
      await after.stop();
    }
  });

  it('tokens.refreshTTL is validated; a misspelt key is an error, not a silent default', () => {
    expect(buildConfig({}).tokens.refreshTTL).toBeUndefined(); // → DEFAULT_REFRESH_TTL (12 h)
    expect(DEFAULT_REFRESH_TTL).toBeLessThanOrEqual(24 * HOUR);
    expect(buildConfig({ tokens: { refreshTTL: '2h' } }).tokens.refreshTTL).toBe(2 * HOUR);
    expect(buildConfig({ tokens: { refreshTTL: 0 } }).tokens.refreshTTL).toBe(0);
    expect(() => buildConfig({ tokens: { refreshTTL: '30d' } })).toThrow(/tokens\.refreshTTL.*between 1m and 7d/);
    expect(() => buildConfig({ tokens: { refreshTTL: '10s' } })).toThrow(/tokens\.refreshTTL/);
    expect(() => buildConfig({ tokens: { refreshTtl: '1h' } })).toThrow(/tokens\.refreshTtl.*unknown key/);
  });

  it('refreshExpiry (pure): min(identity exp, iat + refreshTTL); none without exp or with refreshTTL 0', () => {
    expect(refreshExpiry(1000, 1000 + 10 * YEAR, HOUR)).toBe(1000 + HOUR);
    expect(refreshExpiry(1000, 1600, HOUR)).toBe(1600);
    expect(refreshExpiry(1000, 1000 + YEAR)).toBe(1000 + 12 * HOUR);
    expect(refreshExpiry(1000, undefined, HOUR)).toBeUndefined();
    expect(refreshExpiry(1000, 1000 + YEAR, 0)).toBeUndefined();
    expect(refreshExpiry(1000, 999, HOUR)).toBeUndefined();
  });
});

describe('identity tokens issued in the future', () => {
  let t: Target;
  beforeAll(async () => {
    t = await startTarget();
  });
  afterAll(() => t.stop());

  it('an iat an hour ahead is refused with the reason; nothing reaches the upstream', async () => {
    const now = nowS();
    const r = await getToken(t, await ciToken(now + HOUR, now + 2 * HOUR), false);
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
    expect(r.body.errors?.[0]?.message).toMatch(/issued in the future.*check the clocks/);
    expect(r.body.token).toBeUndefined();
    expect(t.upstream.requests).toEqual([]);
  });

  it('an iat within clockSkew (30 s) is accepted', async () => {
    const now = nowS();
    const r = await getToken(t, await ciToken(now + 10, now + 600), false);
    expect(r.status).toBe(200);
  });

  it('futureIssuedAt (pure)', () => {
    expect(futureIssuedAt(1000, 1_000_000, 30)).toBeUndefined();
    expect(futureIssuedAt(1030, 1_000_000, 30)).toBeUndefined();
    expect(futureIssuedAt(1031, 1_000_000, 30)).toMatch(/issued in the future/);
    expect(futureIssuedAt(undefined, 1_000_000, 30)).toBeUndefined();
  });
});
