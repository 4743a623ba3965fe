import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApi, type KubeApi } from '../fixtures/kube-api.js';
import { startProxy, type TestProxy } from '../helpers/server.js';

/**
 * The identity issuer misbehaves after start-up: goes down, rotates keys, answers slowly; and the
 * Kubernetes API goes slow during TokenReview. Cached keys keep working, new keys are picked up,
 * and every outbound call is bounded by the issuer's `timeout` (fail closed with 503, never hang).
 */
const POLICY = `
rules:
  - name: namespace-owns-its-prefix
    actions: [pull, push]
    when: request.repository.startsWith(identity.namespace + "/")
`;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rap-issuer-faults-'));
});

async function issuerProxy(
  api: KubeApi,
  extra: Record<string, unknown> = {},
  refetchIntervalMs = 200,
): Promise<TestProxy> {
  const caFile = join(dir, `ca-${Math.random().toString(36).slice(2)}.crt`);
  writeFileSync(caFile, api.caPem);
  return startProxy({
    withTestIssuer: false,
    policy: POLICY,
    config: {
      issuers: [
        {
          name: 'cluster',
          issuer: api.issuer,
          preset: 'kubernetes',
          caFile,
          audiences: ['registry.test'],
          timeout: '1s',
          ...extra,
        },
      ],
      limits: { tokenPerClient: { rate: 0 } },
    },
    runtime: { env: {}, refetchIntervalMs },
  });
}

async function tokenStatus(
  p: TestProxy,
  identity: string,
): Promise<{ status: number; ms: number; body: { error_description?: string; access_token?: string } }> {
  const started = performance.now();
  const r = await p.requestToken(identity, ['repository:team-a/app:pull']);
  return { status: r.status, ms: performance.now() - started, body: r.body };
}

async function waitReady(p: TestProxy): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await fetch(`${p.url}/readyz`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('proxy never became ready');
}

describe('issuer faults', () => {
  let api: KubeApi;
  afterAll(() => api?.stop());

  it('keeps verifying new tokens with cached keys while the issuer is down', async () => {
    api = await startKubeApi();
    const p = await issuerProxy(api);
    await waitReady(p);
    const before = await api.mintBound({ audiences: ['registry.test'] });
    expect((await tokenStatus(p, before)).status).toBe(200);
    const fresh = await api.mintBound({ audiences: ['registry.test'], pod: 'other-pod' });
    await api.stop();
    // a token never seen before, signed by the known key: no network needed
    const r = await tokenStatus(p, fresh);
    expect(r.status).toBe(200);
    expect(r.body.access_token).toBeTruthy();
    // a token with an unknown kid cannot be checked: refused, quickly, with a reason
    const unknown = await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'], kid: 'new-kid' }));
    expect(unknown.status).toBe(401);
    expect(unknown.ms).toBeLessThan(3000);
    await p.stop();
  });

  it('picks up rotated keys and stops accepting the dropped one', async () => {
    api = await startKubeApi();
    const p = await issuerProxy(api);
    await waitReady(p);
    const oldKid = api.currentKid();
    expect((await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'] }))).status).toBe(200);
    await api.rotate();
    await new Promise((r) => setTimeout(r, 250)); // past the refetch rate limit
    expect((await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'] }))).status).toBe(200);
    const stale = await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'], kid: oldKid }));
    expect(stale.status).toBe(401);
    expect(stale.body.error_description).toMatch(/key/i);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    expect(metrics).toMatch(/rap_jwks_refreshes_total\{issuer="cluster",result="ok"\} [2-9]/);
    await p.stop();
    await api.stop();
  });

  it('bounds a slow issuer by its timeout: 503 with a reason, then recovers', async () => {
    api = await startKubeApi();
    api.setDelay(4000);
    const p = await issuerProxy(api, {}, 0);
    const r = await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'] }));
    expect(r.status).toBe(503);
    expect(r.body.error_description).toMatch(/could not be fetched|not available yet/);
    expect(r.ms).toBeLessThan(3000);
    const ready = await fetch(`${p.url}/readyz`);
    expect(ready.status).toBe(503);
    api.setDelay(0);
    await waitReady(p);
    expect((await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'] }))).status).toBe(200);
    await p.stop();
    await api.stop();
  });

  it('fails closed, within the timeout, when TokenReview is slow or broken', async () => {
    api = await startKubeApi();
    const tokenFile = join(dir, 'reviewer-token');
    writeFileSync(tokenFile, 'reviewer');
    const caFile = join(dir, 'tr-ca.crt');
    writeFileSync(caFile, api.caPem);
    const p = await issuerProxy(api, {
      tokenReview: { url: api.url, caFile, bearerTokenFile: tokenFile, cacheTTL: '1s' },
    });
    await waitReady(p);
    expect((await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'] }))).status).toBe(200);
    api.setDelay(4000);
    const slow = await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'], pod: 'p2' }));
    expect(slow.status).toBe(503);
    expect(slow.body.error_description).toMatch(/TokenReview failed/);
    expect(slow.ms).toBeLessThan(3000);
    api.setDelay(0);
    api.setTokenReviewBroken(true);
    expect((await tokenStatus(p, await api.mintBound({ audiences: ['registry.test'], pod: 'p3' }))).status).toBe(503);
    expect(p.logs.some((l) => l.includes('fail closed'))).toBe(true);
    await p.stop();
    await api.stop();
  });
});
