import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { startKubeApi, type KubeApi } from '../../fixtures/kube-api.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

const CLUSTER_ISSUER = 'https://kubernetes.default.svc.cluster.local';
let api: KubeApi;
let saDir: string;

const basic = (t: string) => `Basic ${Buffer.from(`x:${t}`).toString('base64')}`;

async function tokenFor(proxy: TestProxy, identity: string, scope: string) {
  const r = await proxy.requestToken(identity, [scope]);
  return { status: r.status, body: r.body as Record<string, any> };
}

beforeAll(async () => {
  // a cluster whose discovery needs the pod's token (anonymous discovery off)
  api = await startKubeApi({ requireBearer: 'pod-sa-token', issuer: CLUSTER_ISSUER });
  saDir = mkdtempSync(join(tmpdir(), 'rap-sa-'));
  writeFileSync(join(saDir, 'ca.crt'), api.caPem);
  writeFileSync(join(saDir, 'token'), 'pod-sa-token');
  writeFileSync(join(saDir, 'namespace'), 'registry-auth-proxy');
});
afterAll(async () => {
  await api.stop();
});

describe('in-cluster zero-config mode', () => {
  it('trusts the cluster issuer discovered from the API server and applies the namespace policy', async () => {
    const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(api.url).port };
    const proxy = await startProxy({
      withTestIssuer: false,
      policy: (await import('node:fs')).readFileSync('policies/default.yaml', 'utf8'),
      runtime: { env, serviceAccountDir: saDir },
    });
    try {
      expect(proxy.runtime.config.issuers).toEqual([
        expect.objectContaining({
          name: 'cluster',
          issuer: CLUSTER_ISSUER,
          preset: 'kubernetes',
          audiences: ['registry.test'],
        }),
      ]);
      expect(proxy.logs.some((l) => l.includes('in-cluster mode'))).toBe(true);
      const bound = await api.mintBound({ namespace: 'team-a', audiences: ['registry.test'] });
      const ok = await tokenFor(proxy, bound, 'repository:team-a/app:pull,push');
      expect(ok.status).toBe(200);
      expect(decodeJwt(ok.body.token)).toMatchObject({
        sub: 'cluster:system:serviceaccount:team-a:builder',
        access: [{ name: 'team-a/app', actions: ['pull', 'push'] }],
      });
      const other = await tokenFor(proxy, bound, 'repository:team-b/app:pull');
      expect(decodeJwt(other.body.token).access).toEqual([]);
      // tokens for the API server's own audience are not registry credentials
      const apiAud = await api.mintBound({ namespace: 'team-a', audiences: [CLUSTER_ISSUER] });
      expect((await tokenFor(proxy, apiAud, 'repository:team-a/app:pull')).status).toBe(401);
    } finally {
      await proxy.stop();
    }
  });

  it('is off outside a pod', async () => {
    const proxy = await startProxy({ withTestIssuer: false, runtime: { env: {}, serviceAccountDir: saDir } });
    expect(proxy.runtime.config.issuers).toEqual([]);
    await proxy.stop();
  });
});

describe('TokenReview through /token', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-tr-'));
    writeFileSync(join(dir, 'ca.crt'), api.caPem);
    writeFileSync(join(dir, 'token'), 'pod-sa-token');
    const tr = { url: api.url, caFile: join(dir, 'ca.crt'), bearerTokenFile: join(dir, 'token'), cacheTTL: '1ms' };
    proxy = await startProxy({
      withTestIssuer: false,
      policy: `rules: [{name: ns, actions: [pull, push], when: 'identity.preset == "kubernetes" && request.repository.startsWith(identity.namespace + "/")'}]`,
      config: {
        issuers: [
          {
            name: 'cluster',
            issuer: CLUSTER_ISSUER,
            preset: 'kubernetes',
            jwksURI: `${api.url}/openid/v1/jwks`,
            caFile: tr.caFile,
            bearerTokenFile: tr.bearerTokenFile,
            tokenReview: tr,
          },
          {
            name: 'legacy',
            issuer: 'kubernetes/serviceaccount',
            preset: 'kubernetes',
            tokenReview: tr,
            legacyTokens: true,
          },
        ],
      },
    });
  });
  afterAll(async () => {
    await proxy.stop();
  });

  it('accepts a confirmed token and refuses it once the pod is deleted', async () => {
    const bound = await api.mintBound({ namespace: 'team-a', audiences: ['registry.test'] });
    expect((await tokenFor(proxy, bound, 'repository:team-a/app:pull')).status).toBe(200);
    api.invalidate(bound);
    await new Promise((r) => setTimeout(r, 5));
    const refused = await tokenFor(proxy, bound, 'repository:team-a/app:pull');
    expect(refused.status).toBe(401);
    expect(refused.body.errors[0].message).toMatch(/invalidated/);
  });

  it('fails closed when the API server is down, with a clear log line', async () => {
    api.setTokenReviewBroken(true);
    try {
      const bound = await api.mintBound({ namespace: 'team-a', audiences: ['registry.test'] });
      const r = await tokenFor(proxy, bound, 'repository:team-a/app:pull');
      expect(r.status).toBe(503);
      expect(proxy.logs.some((l) => l.includes('TokenReview failed: refusing the token (fail closed)'))).toBe(true);
    } finally {
      api.setTokenReviewBroken(false);
    }
  });

  it('accepts a legacy secret-based token only through TokenReview, with no refresh token', async () => {
    const legacy = await api.mintLegacy({ namespace: 'team-a', serviceAccount: 'deployer' });
    const res = await fetch(
      `${proxy.url}/token?service=registry.test&offline_token=true&scope=repository:team-a/app:pull`,
      {
        headers: { authorization: basic(legacy) },
      },
    );
    const body = (await res.json()) as Record<string, any>;
    expect(res.status).toBe(200);
    expect(body.refresh_token).toBeUndefined();
    expect(decodeJwt(body.token)).toMatchObject({
      sub: 'legacy:system:serviceaccount:team-a:deployer',
      access: [{ name: 'team-a/app', actions: ['pull'] }],
    });
    api.invalidate(legacy);
    await new Promise((r) => setTimeout(r, 5));
    expect((await tokenFor(proxy, legacy, 'repository:team-a/app:pull')).status).toBe(401);
  });
});
