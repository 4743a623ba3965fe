import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createHttpClient } from '../../../src/identity/http.js';
import { createIdentityVerifier } from '../../../src/identity/verifier.js';
import { IdentityError } from '../../../src/identity/types.js';
import type { IssuerConfig } from '../../../src/config/types.js';
import { silentLogger } from '../../../src/log.js';
import { startKubeApi, type KubeApi } from '../../fixtures/kube-api.js';

const AUD = 'registry.test';
let api: KubeApi;
let dir: string;

function cfg(extra: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    name: 'cluster',
    issuer: api.issuer,
    preset: 'kubernetes',
    audiences: [AUD],
    caFile: join(dir, 'ca.crt'),
    bearerTokenFile: join(dir, 'token'),
    tokenReview: false,
    legacyTokens: false,
    clockSkew: 30,
    timeout: 5000,
    ...extra,
  };
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(IdentityError);
    return (err as IdentityError).reason;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  api = await startKubeApi({ requireBearer: 'reader-token' });
  dir = mkdtempSync(join(tmpdir(), 'rap-kube-'));
  writeFileSync(join(dir, 'ca.crt'), api.caPem);
  writeFileSync(join(dir, 'token'), 'reader-token\n');
});
afterAll(async () => {
  await api.stop();
});

describe('Kubernetes issuer over HTTPS with discovery + JWKS', () => {
  it('verifies a bound token using the cluster CA and the bearer token', async () => {
    const v = createIdentityVerifier([cfg()], { logger: silentLogger() });
    const id = await v.verify(
      await api.mintBound({ namespace: 'team-a', serviceAccount: 'builder', pod: 'builder-1', audiences: [AUD] }),
    );
    expect(id).toMatchObject({
      issuerName: 'cluster',
      namespace: 'team-a',
      serviceAccount: 'builder',
      podName: 'builder-1',
    });
    expect(v.ready?.()).toBe(true);
    await v.close?.();
  });

  it('asks for the JWKS in the one media type the API server produces (406 for application/json alone)', async () => {
    // The fake negotiates like kube-apiserver (go-restful): a client that sends only
    // `Accept: application/json` never loads the keys on a real cluster and is never Ready.
    const http = createHttpClient({
      caFile: join(dir, 'ca.crt'),
      bearerTokenFile: join(dir, 'token'),
      bearerTokenOrigins: [api.url],
    });
    const ok = await http.getJson(`${api.url}/openid/v1/jwks`);
    expect(ok.status).toBe(200);
    expect((ok.body as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    await http.close();
    const dispatcher = new Agent({ connect: { ca: api.caPem } });
    const res = await request(`${api.url}/openid/v1/jwks`, {
      dispatcher,
      headers: { accept: 'application/json', authorization: 'Bearer reader-token' },
    });
    expect(res.statusCode).toBe(406);
    expect(await res.body.text()).toBe('406: Not Acceptable');
    await dispatcher.close();
  });

  it('fails clearly without the bearer token (anonymous discovery off)', async () => {
    const v = createIdentityVerifier([cfg({ bearerTokenFile: undefined })], { logger: silentLogger() });
    expect(await reason(v.verify(await api.mintBound()))).toBe('issuer_unavailable');
    expect(v.ready?.()).toBe(false);
    await v.close?.();
  });

  it('fails without the CA (TLS is verified)', async () => {
    const v = createIdentityVerifier([cfg({ caFile: undefined })], { logger: silentLogger() });
    expect(await reason(v.verify(await api.mintBound()))).toBe('issuer_unavailable');
    await v.close?.();
  });

  it('refuses a token for the API server audience (a one-year auto-mounted token)', async () => {
    const v = createIdentityVerifier([cfg()], { logger: silentLogger() });
    expect(await reason(v.verify(await api.mintBound({ audiences: [api.issuer] })))).toBe('wrong_audience');
    await v.close?.();
  });

  it('picks up a rotated key, drops the old one, and rate-limits unknown-kid refetches', async () => {
    const v = createIdentityVerifier([cfg()], { logger: silentLogger(), refetchIntervalMs: 300 });
    const before = await api.mintBound();
    await v.verify(before);
    await api.rotate();
    const after = await api.mintBound();
    // the new kid is unknown → one refetch (after the rate-limit interval) → accepted
    await new Promise((r) => setTimeout(r, 350));
    await expect(v.verify(after)).resolves.toMatchObject({ namespace: 'team-a' });
    // a token signed by the dropped key, not yet cached, now fails
    const oldKidToken = await api.mintBound({ kid: 'not-in-jwks-anymore' });
    expect(await reason(v.verify(oldKidToken))).toBe('unknown_key');
    // a flood of unknown kids causes at most one JWKS fetch per interval
    const jwksBefore = api.requests.get('/openid/v1/jwks') ?? 0;
    for (let i = 0; i < 50; i++) await reason(v.verify(await api.mintBound({ kid: `forged-${i}` })));
    const jwksAfter = api.requests.get('/openid/v1/jwks') ?? 0;
    expect(jwksAfter - jwksBefore).toBeLessThanOrEqual(1);
    await v.close?.();
  });

  it('keeps verifying with cached keys when the issuer goes down', async () => {
    const other = await startKubeApi();
    const caFile = join(dir, 'other-ca.crt');
    writeFileSync(caFile, other.caPem);
    const v = createIdentityVerifier([cfg({ issuer: other.issuer, caFile, bearerTokenFile: undefined })], {
      logger: silentLogger(),
      refetchIntervalMs: 0,
    });
    await v.verify(await other.mintBound());
    const later = await other.mintBound({ namespace: 'team-b' });
    await other.stop();
    await expect(v.verify(later)).resolves.toMatchObject({ namespace: 'team-b' });
    await v.close?.();
  });
});

describe('TokenReview', () => {
  const tr = () => ({
    url: api.url,
    caFile: join(dir, 'ca.crt'),
    bearerTokenFile: join(dir, 'token'),
    cacheTTL: 30_000,
  });

  it('accepts a token the API server confirms, and refuses it once invalidated', async () => {
    const v = createIdentityVerifier([cfg({ tokenReview: { ...tr(), cacheTTL: 0 } })], { logger: silentLogger() });
    const token = await api.mintBound({ namespace: 'ns-r' });
    await expect(v.verify(token)).resolves.toMatchObject({ namespace: 'ns-r' });
    api.invalidate(token);
    expect(await reason(v.verify(token))).toBe('revoked');
    await v.close?.();
  });

  it('caches TokenReview answers for cacheTTL', async () => {
    const v = createIdentityVerifier([cfg({ tokenReview: tr() })], { logger: silentLogger() });
    const token = await api.mintBound({ namespace: 'ns-c' });
    const n0 = api.requests.get('/apis/authentication.k8s.io/v1/tokenreviews') ?? 0;
    await v.verify(token);
    await v.verify(token);
    expect((api.requests.get('/apis/authentication.k8s.io/v1/tokenreviews') ?? 0) - n0).toBe(1);
    await v.close?.();
  });

  it('fails closed when the API server errors or is unreachable', async () => {
    const v = createIdentityVerifier([cfg({ tokenReview: { ...tr(), cacheTTL: 0 } })], { logger: silentLogger() });
    api.setTokenReviewBroken(true);
    try {
      expect(await reason(v.verify(await api.mintBound()))).toBe('issuer_unavailable');
    } finally {
      api.setTokenReviewBroken(false);
    }
    const down = createIdentityVerifier([cfg({ tokenReview: { ...tr(), url: 'https://127.0.0.1:1', cacheTTL: 0 } })], {
      logger: silentLogger(),
    });
    expect(await reason(down.verify(await api.mintBound()))).toBe('issuer_unavailable');
    await v.close?.();
    await down.close?.();
  });

  it('accepts legacy secret tokens only through TokenReview with legacyTokens', async () => {
    const legacyCfg = cfg({
      name: 'legacy',
      issuer: 'kubernetes/serviceaccount',
      legacyTokens: true,
      tokenReview: { ...tr(), cacheTTL: 0 },
    });
    const v = createIdentityVerifier([legacyCfg], { logger: silentLogger() });
    const token = await api.mintLegacy({ namespace: 'old-ns', serviceAccount: 'deployer' });
    await expect(v.verify(token)).resolves.toMatchObject({
      issuerName: 'legacy',
      namespace: 'old-ns',
      serviceAccount: 'deployer',
    });
    api.invalidate(token);
    expect(await reason(v.verify(token))).toBe('revoked');
    // without a legacy issuer entry, the same token's issuer is simply not configured
    const bound = createIdentityVerifier([cfg()], { logger: silentLogger() });
    expect(await reason(bound.verify(await api.mintLegacy()))).toBe('unknown_issuer');
    await v.close?.();
    await bound.close?.();
  });
});
