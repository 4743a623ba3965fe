import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeEcr, type FakeEcr } from '../../fixtures/fake-ecr.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * Issue 18 item 4: a GetAuthorizationToken answer whose `expiresAt` is already past re-scheduled
 * renewal at 0 ms after every success — 100–250 calls a second, forever, with no traffic. The fake ECR
 * API (AWS JSON 1.1 wire format, found through AWS_ENDPOINT_URL_ECR) issues credentials that expired
 * an hour ago; the calls are counted there.
 */
const ACCESS_KEY = 'AKIAFAKEECRRENEWAL01';
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: 'fake-secret-key',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};
/** How long the calls are counted: under the 3 s renewal floor, so one call is all a fixed proxy makes. */
const WINDOW_MS = 2000;

let ecr: FakeEcr;
let upstream: RecordingUpstream;
let proxy: TestProxy;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  ecr = await startFakeEcr({
    accessKeyId: ACCESS_KEY,
    issue: () => ({ password: 'expired-password', ttlSeconds: -3600 }),
  });
  for (const [k, v] of Object.entries({ ...AWS_ENV, AWS_ENDPOINT_URL_ECR: ecr.url })) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  upstream = await startRecordingUpstream();
  proxy = await startProxy({ config: { upstream: { url: upstream.url, auth: { type: 'ecr', region: 'us-east-1' } } } });
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.stop();
  await ecr?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('ECR credential renewal when the answer is already expired', () => {
  it('calls GetAuthorizationToken a bounded number of times, with or without traffic; warns once; counts it', async () => {
    const token = await proxy.registryToken(['repository:shared/app:pull']);
    const get = async () => {
      const res = await fetch(`${proxy.url}/v2/shared/app/tags/list`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await res.arrayBuffer();
      return res.status;
    };
    // The first request fetches the (already expired) credential and is served with it: the
    // registry, not the proxy's clock, judges whether it still works.
    expect(await get()).toBe(200);
    expect(ecr.requests).toHaveLength(1);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(
      `Basic ${Buffer.from('AWS:expired-password').toString('base64')}`,
    );
    // Quiet, then traffic: neither makes more calls before the floored renewal.
    const started = Date.now();
    await new Promise((r) => setTimeout(r, WINDOW_MS / 2));
    for (let i = 0; i < 10 && Date.now() - started < WINDOW_MS; i++) expect(await get()).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, WINDOW_MS - (Date.now() - started))));
    expect(ecr.requests.length).toBeLessThanOrEqual(2);

    const warnings = proxy.logs.filter((l) => l.includes('the ECR authorization token came back already expired'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain('expired-password');
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    const label = `upstream="${new URL(upstream.url).host}"`;
    expect(metrics).toContain(`rap_upstream_credential_renewals_total{${label},outcome="short-lifetime"} 1`);
    expect(metrics).toContain(`rap_upstream_credential_renewal_backoff_seconds{${label}} 3`);
  });
});
