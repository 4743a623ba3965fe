import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { selfSignedCertificateForKey } from '../../../src/pki/certificates.js';
import { generatePrivateKeyPem, signingKeyFromPem } from '../../../src/token/signing-keys.js';
import { silentLogger } from '../../../src/log.js';
import { garAuth } from '../../../src/upstream/kinds/gar.js';
import type { UpstreamConfig } from '../../../src/config/types.js';
import { startFakeGar, startFakeGoogle, type FakeGar, type FakeGoogle } from '../../fixtures/fake-google.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { requireTool } from '../../support/tools.js';
import { configProblem } from '../../support/config.js';

/**
 * Issue 12, Google Artifact Registry (`upstream.auth: {type: gar}`): the proxy gets an OAuth access
 * token from Application Default Credentials — from a fake metadata server (GCE_METADATA_HOST), then
 * from a service-account key whose token_uri is a fake OAuth endpoint (jwt-bearer grant) — and
 * presents it as Basic `oauth2accesstoken:<token>` to GAR's token service (fake) in front of a real
 * Distribution registry in token mode, whose `/v2/` challenge, as GAR's, names no service. The
 * registry's service is deliberately not the front's host: only the repository-scoped challenge
 * tells it, and the registry refuses a token for another audience.
 */
const run = promisify(execFile);
const SERVICE = 'gar-test-service';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';
const ENV_KEYS = [
  'GCE_METADATA_HOST',
  'GCE_METADATA_IP',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'CLOUDSDK_CONFIG',
  'METADATA_SERVER_DETECTION',
];

let dir: string;
let google: FakeGoogle;
let gar: FakeGar;
let registry: Registry;
const proxies: TestProxy[] = [];
const saved: Record<string, string | undefined> = {};

function setEnv(values: Record<string, string | undefined>): void {
  for (const k of ENV_KEYS) {
    if (values[k] === undefined) delete process.env[k];
    else process.env[k] = values[k];
  }
}

async function garProxy(): Promise<TestProxy> {
  const p = await startProxy({ config: { upstream: { url: gar.url, auth: { type: 'gar' } } } });
  proxies.push(p);
  return p;
}

async function skopeo(args: string[]): Promise<string> {
  return (await run(requireTool('skopeo'), args, { timeout: 60_000 })).stdout;
}

beforeAll(async () => {
  for (const k of ENV_KEYS) saved[k] = process.env[k];
  dir = mkdtempSync(join(tmpdir(), 'rap-gar-'));
  mkdirSync(join(dir, 'gcloud'));
  const keyPem = generatePrivateKeyPem('ES256');
  const certPem = await selfSignedCertificateForKey(keyPem, 'artifact registry token service');
  writeFileSync(join(dir, 'bundle.crt'), certPem);
  google = await startFakeGoogle();
  gar = await startFakeGar({ google, key: signingKeyFromPem(keyPem, 'gar', certPem), issuer: 'artifactregistry' });
  registry = await startRegistry({
    tokenAuth: {
      realm: `${gar.url}/v2/token`,
      service: SERVICE,
      issuer: 'artifactregistry',
      rootCertBundle: join(dir, 'bundle.crt'),
    },
  });
  gar.setRegistry(registry.url);
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  await registry?.stop();
  await gar?.stop();
  await google?.stop();
  setEnv(saved);
});

describe('GAR upstream auth (Application Default Credentials, oauth2accesstoken)', () => {
  it('with the metadata server: skopeo pushes and pulls through the proxy; the service comes from a repository-scoped challenge', async () => {
    setEnv({ GCE_METADATA_HOST: google.metadataHost, CLOUDSDK_CONFIG: join(dir, 'gcloud') });
    const proxy = await garProxy();
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity();
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/team-a/docker/app:v1`,
    ]);
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/docker/app:v1`,
      `oci:${join(dir, 'pulled')}:v1`,
    ]);
    const inspect = JSON.parse(
      await skopeo([
        'inspect',
        '--tls-verify=false',
        '--creds',
        `x:${id}`,
        `docker://${proxy.host}/team-a/docker/app:v1`,
      ]),
    );
    expect(inspect.Name).toBe(`${proxy.host}/team-a/docker/app`);
    expect(await registry.repositories()).toContain('team-a/docker/app');
    // One access token from the metadata server, for cloud-platform; reused for every scope set.
    expect(google.issued).toEqual([
      { token: expect.stringMatching(/^ya29\./), via: 'metadata', scope: CLOUD_PLATFORM },
    ]);
    expect(gar.tokenRequests.length).toBeGreaterThan(0);
    expect(
      gar.tokenRequests.every((t) => t.status === 200 && t.user === 'oauth2accesstoken' && t.service === SERVICE),
    ).toBe(true);
    expect(gar.tokenRequests.some((t) => t.scopes.includes('repository:team-a/docker/app:pull,push'))).toBe(true);
  });

  it('with a workload identity federation file (GOOGLE_APPLICATION_CREDENTIALS, external_account): STS exchanges the workload token', async () => {
    const subjectToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('{"sub":"system:serviceaccount:ci:proxy"}').toString('base64url')}.sig`;
    writeFileSync(join(dir, 'k8s-token'), subjectToken);
    const credentials = google.externalAccount(dir, join(dir, 'k8s-token'), subjectToken);
    // The metadata server is moved where nothing listens: only the file may give the token.
    setEnv({
      GOOGLE_APPLICATION_CREDENTIALS: credentials,
      GCE_METADATA_HOST: '127.0.0.1:9',
      CLOUDSDK_CONFIG: join(dir, 'gcloud'),
    });
    const proxy = await garProxy();
    const before = google.issued.length;
    const id = await proxy.mintIdentity();
    const inspect = JSON.parse(
      await skopeo([
        'inspect',
        '--tls-verify=false',
        '--creds',
        `x:${id}`,
        `docker://${proxy.host}/team-a/docker/app:v1`,
      ]),
    );
    expect(inspect.Name).toBe(`${proxy.host}/team-a/docker/app`);
    expect(google.issued.slice(before)).toEqual([
      { token: expect.stringMatching(/^ya29\./), via: 'sts', scope: CLOUD_PLATFORM },
    ]);
  });

  it('an access token the token service refuses is dropped: a new one is fetched and the same request goes through', async () => {
    const proxy = proxies.at(-1)!;
    google.revoke(google.issued.at(-1)!.token);
    const issuedBefore = google.issued.length;
    const requestsBefore = gar.tokenRequests.length;
    // A repository the proxy holds no registry token for yet: it asks the token service (the
    // registry then answers for itself: 404, not the 502 of a refused upstream credential).
    const t = await proxy.registryToken(['repository:team-a/docker/fresh:pull']);
    const res = await fetch(`${proxy.url}/v2/team-a/docker/fresh/tags/list`, {
      headers: { authorization: `Bearer ${t}` },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
    expect(google.issued.length).toBe(issuedBefore + 1);
    expect(gar.tokenRequests.slice(requestsBefore).map((r) => r.status)).toEqual([401, 200]);
  });

  it('without a repository to probe (readiness, catalog), the service is the realm host; the token never goes to another origin', async () => {
    const upstream = { url: gar.url, timeout: 5000, followRedirects: false, auth: { type: 'gar' } } as UpstreamConfig;
    const token = google.issued.at(-1)!.token;
    const auth = garAuth(upstream, silentLogger(), { get: async () => token, forget: () => {} });
    expect(await auth.authorization([])).toMatch(/^Bearer ey/);
    expect(gar.tokenRequests.at(-1)).toMatchObject({ status: 200, service: gar.host, scopes: [] });
    await auth.close();
    // An upstream whose realm is on another origin: refused before any token is sent.
    const elsewhere = garAuth({ ...upstream, url: registry.url }, silentLogger(), {
      get: () => Promise.reject(new Error('must not be asked')),
      forget: () => {},
    });
    await expect(elsewhere.authorization([])).rejects.toMatchObject({ untrustedRealm: true });
    await elsewhere.close();
  });

  it('is configured as {type: gar}, nothing else: no secrets in the file', () => {
    expect(configProblem({ upstream: { url: 'https://europe-west1-docker.pkg.dev', auth: { type: 'gar' } } })).toBe(
      'no error',
    );
    expect(
      configProblem({
        upstream: { url: 'https://europe-west1-docker.pkg.dev', auth: { type: 'gar', passwordFile: '/k' } },
      }),
    ).toBe('upstream.auth.passwordFile: unknown key (known: type)');
  });
});
