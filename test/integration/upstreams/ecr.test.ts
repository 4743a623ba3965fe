import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startFakeEcr, type FakeEcr } from '../../fixtures/fake-ecr.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { requireTool } from '../../support/tools.js';
import { silentLogger } from '../../../src/log.js';
import { ecrAuth } from '../../../src/upstream/kinds/ecr.js';

/**
 * Issue 12, Amazon ECR (`upstream.auth: {type: ecr}`): the proxy calls GetAuthorizationToken — on a
 * fake ECR API (AWS JSON 1.1, found through AWS_ENDPOINT_URL_ECR, as the SDK finds any endpoint) —
 * and presents `AWS:<password>` as Basic to a real Distribution registry with htpasswd auth whose
 * only user is `AWS` with the password the fake last issued (the test rewrites the file before
 * the fake answers: the registry re-reads it when it changes).
 */
const run = promisify(execFile);

/** bcrypt hashes (cost 5) of `ecr-password-<n>`: Distribution's htpasswd takes bcrypt only. */
const HASHES = [
  '$2b$05$LEST3bkzx237s.thCR8oBO.1ELVYFWT41CGP3Hj9qKTFmrmkPeDH2',
  '$2b$05$YCEAJykII3s5kVOs7nXW4.X6vJ36L/l/yQW.pNEWiM43ruc7qr//q',
  '$2b$05$V0Gj0hTnIPrRbW4E.GPVWub2G.Wu8JnRP.XO0aZ94920m8WJ8ID6.',
];
const ACCESS_KEY = 'AKIAFAKEECRTEST00001';
const AWS_ENV = {
  AWS_ENDPOINT_URL_ECR: '',
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: 'fake-secret-key',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

let dir: string;
let htpasswd: string;
let ecr: FakeEcr;
let registry: Registry;
let recorder: RecordingUpstream;
let proxy: TestProxy;
let recorded: TestProxy;
const saved: Record<string, string | undefined> = {};
/** The first password lasts 4 s (renewed at 80 %: ~3.2 s), later ones 12 h. */
const FIRST_TTL = 4;

const writeHtpasswd = (password: string) =>
  writeFileSync(htpasswd, `AWS:${HASHES[Number(password.split('-').pop()) - 1]}\n`);

async function skopeo(args: string[]): Promise<string> {
  return (await run(requireTool('skopeo'), args, { timeout: 60_000 })).stdout;
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-ecr-'));
  htpasswd = join(dir, 'htpasswd');
  ecr = await startFakeEcr({
    accessKeyId: ACCESS_KEY,
    issue: (n) => ({
      password: `ecr-password-${Math.min(n, HASHES.length)}`,
      ttlSeconds: n === 1 ? FIRST_TTL : 12 * 3600,
    }),
    beforeAnswer: writeHtpasswd,
  });
  for (const [k, v] of Object.entries({ ...AWS_ENV, AWS_ENDPOINT_URL_ECR: ecr.url })) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  writeHtpasswd('ecr-password-1');
  registry = await startRegistry({ htpasswd });
  recorder = await startRecordingUpstream();
  proxy = await startProxy({ config: { upstream: { url: registry.url, auth: { type: 'ecr', region: 'us-east-1' } } } });
  recorded = await startProxy({
    config: { upstream: { url: recorder.url, auth: { type: 'ecr', region: 'eu-west-1' } } },
  });
});

afterAll(async () => {
  await proxy?.stop();
  await recorded?.stop();
  await recorder?.stop();
  await registry?.stop();
  await ecr?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('ECR upstream auth', () => {
  it('renews the credential in the background before it expires, and the new password is used', async () => {
    const token = await proxy.registryToken(['repository:team-a/app:pull']);
    const get = () => fetch(`${proxy.url}/v2/team-a/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    // The first request fetches credential 1 (4 s); the registry accepts AWS:ecr-password-1.
    const first = await get();
    await first.text();
    expect(first.status).toBe(404); // the repository does not exist yet: authenticated, not 401
    expect(ecr.issued.length).toBe(1);
    // Without any request, the proxy renews it before it expires.
    await waitUntil(() => ecr.issued.length >= 2, 'a second GetAuthorizationToken call');
    const [one, two] = ecr.issued as [FakeEcr['issued'][0], FakeEcr['issued'][0]];
    expect(two.at).toBeLessThan(one.expiresAt);
    expect(two.at - one.at).toBeGreaterThanOrEqual(0.7 * (one.expiresAt - one.at));
    // htpasswd now holds only password 2: a push and a pull through the proxy succeed with it.
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity({ team: 'team-a' });
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/app:v1`,
      `oci:${join(dir, 'pulled')}:v1`,
    ]);
    const inspect = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxy.host}/team-a/app:v1`]),
    );
    expect(inspect.Name).toBe(`${proxy.host}/team-a/app`);
    expect(await registry.repositories()).toContain('team-a/app');
    expect(ecr.issued.length).toBe(2); // 12 h now: no further calls
  });

  it('an upstream 401 drops the cached credential: that request fails, the next one fetches a new one and succeeds', async () => {
    // The registry's password changes behind the proxy's back (here: to the one the fake issues next).
    writeHtpasswd('ecr-password-3');
    const token = await proxy.registryToken(['repository:team-a/app:pull']);
    const get = () => fetch(`${proxy.url}/v2/team-a/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    const refused = await get();
    await refused.text();
    expect(refused.status).toBe(502); // the upstream rejected the proxy's credentials (not the client's)
    const ok = await get();
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ name: 'team-a/app', tags: ['v1'] });
    expect(ecr.issued.map((i) => i.password)).toEqual(['ecr-password-1', 'ecr-password-2', 'ecr-password-3']);
  });

  it('single flight: concurrent requests share one GetAuthorizationToken call', async () => {
    const auth = ecrAuth('http://127.0.0.1:9', 'us-east-1', silentLogger());
    const before = ecr.issued.length;
    const headers = await Promise.all(Array.from({ length: 20 }, () => auth.authorization()));
    expect(ecr.issued.length - before).toBe(1);
    expect(new Set(headers).size).toBe(1);
    await auth.close();
  });

  it('speaks the ECR API as the SDK does, and sends the upstream only Basic AWS:<password>, never the client token', async () => {
    for (const r of ecr.requests) {
      expect(r.target).toBe('AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken');
      expect(r.headers['content-type']).toBe('application/x-amz-json-1.1');
      expect(r.body).toBe('{}');
    }
    expect(ecr.requests.some((r) => /\/eu-west-1\/ecr\/aws4_request/.test(String(r.headers.authorization)))).toBe(
      false,
    );
    const before = ecr.requests.length;
    const token = await recorded.registryToken(['repository:team-a/app:pull']);
    const res = await fetch(`${recorded.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await res.text();
    expect(res.status).toBe(200);
    // the configured region signs the call
    expect(String(ecr.requests[before]?.headers.authorization)).toMatch(/\/eu-west-1\/ecr\/aws4_request/);
    const seen = recorder.requests.at(-1)!;
    const password = ecr.issued.at(-1)!.password;
    expect(seen.headers.authorization).toBe(`Basic ${Buffer.from(`AWS:${password}`).toString('base64')}`);
    expect(JSON.stringify(seen.headers)).not.toContain(token);
    // /readyz probes the registry with the forwarder's credential: ready
    const ready = await fetch(`${proxy.url}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('one credential refresher per upstream: the readiness probe and the forwarder share it', async () => {
    // Its own region, so that its GetAuthorizationToken calls are told apart by their signature.
    const shared = await startProxy({
      config: { upstream: { url: recorder.url, auth: { type: 'ecr', region: 'ap-south-1' } } },
    });
    try {
      const calls = () =>
        ecr.requests.filter((r) => /\/ap-south-1\/ecr\/aws4_request/.test(String(r.headers.authorization))).length;
      const ready = await fetch(`${shared.url}/readyz`);
      await ready.text();
      const probed = recorder.requests.at(-1)!;
      expect(probed.url).toBe('/v2/');
      expect(probed.headers.authorization).toMatch(/^Basic /);
      const token = await shared.registryToken(['repository:team-a/app:pull']);
      const res = await fetch(`${shared.url}/v2/team-a/app/manifests/v1`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await res.text();
      expect(res.status).toBe(200);
      expect(recorder.requests.at(-1)!.headers.authorization).toBe(probed.headers.authorization);
      expect(calls()).toBe(1);
    } finally {
      await shared.stop();
    }
  });
});
