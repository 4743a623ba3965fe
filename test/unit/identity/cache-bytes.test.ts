import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { createIdentityVerifier } from '../../../src/identity/verifier.js';
import { DEFAULT_CACHE_MAX_BYTES, TokenCache, tokenEntryBytes } from '../../../src/http/token-cache.js';
import { IdentityError } from '../../../src/identity/types.js';
import type { IssuerConfig } from '../../../src/config/types.js';
import { loadKeyRing } from '../../../src/token/signing-keys.js';
import { issueRegistryToken } from '../../../src/token/issue.js';
import { createRegistryTokenVerifier } from '../../../src/token/verify.js';
import { silentLogger } from '../../../src/log.js';

/**
 * Issue 9 item 11: the identity and registry-token verification caches were bounded by entry count
 * (10 000 / 20 000), so large tokens (12k of them took RSS from 70 to 195 MB) grew memory without a
 * real bound, and the registry cache emptied itself entirely when full. Both are now LRU caches
 * bounded by accounted bytes; eviction only costs a re-verification.
 */

const ISS = 'https://issuer.test';
const AUD = 'registry.test';
let key: CryptoKey;
let dir: string;
let nowMs = Date.now();

function issuer(): IssuerConfig {
  return {
    name: 'ci',
    issuer: ISS,
    audiences: [AUD],
    jwksFile: join(dir, 'jwks.json'),
    tokenReview: false,
    legacyTokens: false,
    clockSkew: 30,
    timeout: 5000,
  };
}

/** An identity token carrying ~`padBytes` of claims (the issue's "large tokens"). */
async function bigToken(i: number, padBytes = 10_000, ttl = 600): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({ iss: ISS, aud: AUD, sub: `workload-${i}`, iat: now, exp: now + ttl, pad: 'x'.repeat(padBytes) })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .sign(key);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-cache-'));
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  writeFileSync(
    join(dir, 'jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', use: 'sig' }] }),
  );
});

describe('identity verification cache: bounded by bytes', () => {
  const maxBytes = 1 << 20;
  let v: ReturnType<typeof createIdentityVerifier>;
  beforeAll(() => {
    v = createIdentityVerifier([issuer()], { logger: silentLogger(), now: () => nowMs, cacheMaxBytes: maxBytes });
  });
  afterAll(() => v.close?.());

  it('stays under its byte budget however many large tokens arrive', async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 300; i++) {
      const t = await bigToken(i);
      tokens.push(t);
      expect((await v.verify(t)).subject).toBe(`workload-${i}`);
      const u = v.cacheUsage();
      expect(u.bytes).toBeLessThanOrEqual(maxBytes);
      expect(u.maxBytes).toBe(maxBytes);
    }
    const u = v.cacheUsage();
    // ~14 KB tokens, accounted at ~28 KB: a few dozen fit, not 300 (the old count bound would keep all)
    expect(u.entries).toBeGreaterThan(10);
    expect(u.entries).toBeLessThan(Math.ceil(maxBytes / tokenEntryBytes(tokens[0]!)) + 1);
    expect(u.bytes).toBeGreaterThan(maxBytes / 2);

    // correct after eviction: the first token was evicted and verifies again from scratch
    const again = await v.verify(tokens[0]!);
    expect(again.subject).toBe('workload-0');
    // the most recent one is a cache hit (same object)
    const last = tokens[tokens.length - 1]!;
    expect(await v.verify(last)).toBe(await v.verify(last));
    expect(v.cacheUsage().bytes).toBeLessThanOrEqual(maxBytes);
  });

  it('a cached entry still expires at the token exp', async () => {
    const t = await bigToken(9999, 100, 60);
    await v.verify(t);
    const saved = nowMs;
    nowMs += 10 * 60_000;
    try {
      await expect(v.verify(t)).rejects.toSatisfy((e) => e instanceof IdentityError && e.reason === 'expired');
    } finally {
      nowMs = saved;
    }
  });

  it('defaults to DEFAULT_CACHE_MAX_BYTES', async () => {
    const d = createIdentityVerifier([issuer()], { logger: silentLogger() });
    expect(d.cacheUsage().maxBytes).toBe(DEFAULT_CACHE_MAX_BYTES);
    await d.close?.();
  });
});

describe('registry-token verification cache: bounded by bytes, LRU instead of clear-all', () => {
  it('stays under its budget with large tokens, and keeps answering correctly after eviction', async () => {
    const ring = await loadKeyRing({ algorithm: 'ES256', ttl: 300 }, silentLogger());
    const opts = { issuer: 'https://proxy.test', service: AUD, ttl: 300 };
    const maxBytes = 256 * 1024;
    const verifier = createRegistryTokenVerifier(ring, { issuer: opts.issuer, service: AUD, cacheMaxBytes: maxBytes });
    const who = { issuerName: 'ci', issuer: ISS, subject: 'job', claims: {} };
    const tokens: string[] = [];
    for (let i = 0; i < 120; i++) {
      // ~40 long repository names: a ~10 KB token
      const access = Array.from({ length: 40 }, (_, j) => ({
        type: 'repository',
        name: `team-${i}/${'r'.repeat(150)}-${j}`,
        actions: ['pull'],
      }));
      const { token } = await issueRegistryToken(ring, who, access, opts);
      tokens.push(token);
      expect((await verifier.verify(token)).access[0]!.name).toBe(`team-${i}/${'r'.repeat(150)}-0`);
      expect(verifier.cacheUsage().bytes).toBeLessThanOrEqual(maxBytes);
    }
    const u = verifier.cacheUsage();
    expect(u.entries).toBeGreaterThan(5);
    expect(u.entries).toBeLessThan(120);
    // evicted: verified again; recent: still cached (same object), not wiped by a clear-all
    expect((await verifier.verify(tokens[0]!)).access[0]!.name).toMatch(/^team-0\//);
    const recent = tokens[118]!;
    expect(await verifier.verify(recent)).toBe(await verifier.verify(recent));
    expect(verifier.cacheUsage().bytes).toBeLessThanOrEqual(maxBytes);
  });
});

describe('TokenCache', () => {
  it('accounts each entry by its token size and skips an entry larger than the budget', () => {
    const c = new TokenCache<{ v: number }>(10_000);
    c.set('a', { v: 1 }, 'x'.repeat(1000));
    expect(c.usage()).toEqual({ entries: 1, bytes: tokenEntryBytes('x'.repeat(1000)), maxBytes: 10_000 });
    c.set('huge', { v: 2 }, 'x'.repeat(20_000));
    expect(c.get('huge')).toBeUndefined();
    expect(c.get('a')).toEqual({ v: 1 });
    for (let i = 0; i < 50; i++) c.set(`k${i}`, { v: i }, 'y'.repeat(1000));
    expect(c.usage().bytes).toBeLessThanOrEqual(10_000);
    expect(c.get('k49')).toEqual({ v: 49 });
    expect(c.get('a')).toBeUndefined();
  });
});
