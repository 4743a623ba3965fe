import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority } from '../support/ca.js';
import { TestIssuer } from '../support/issuer.js';
import { buildConfig } from '../../src/config/load.js';
import { discoveredJwksProblem } from '../../src/identity/oidc.js';
import { bearerTokenOrigins } from '../../src/identity/jwt-source.js';
import { startProxy, type TestProxy } from '../helpers/server.js';

/**
 * Issue 9 item 6: an issuer's `bearerTokenFile` (a Kubernetes service-account token, typically) was
 * sent to whatever `jwks_uri` OIDC discovery named — another host, plain http. Now a discovered
 * jwks_uri must be https on the issuer's own origin (else: refused, with the fix in the log), the
 * bearer token goes only to the issuer's origin (or the API server / TokenReview URL), and an
 * explicitly configured `jwksURI` elsewhere is fetched without it.
 */

interface Seen {
  path: string;
  authorization?: string;
}

interface FakeHost {
  url: string;
  seen: Seen[];
  stop(): Promise<void>;
}

const BEARER = 'cluster-reader-token';
const POLICY = `rules: [{name: corp-pulls, actions: [pull], when: 'identity.issuerName == "corp"'}]`;
let dir: string;
let caFile: string;
let tls: { cert: string; key: string };
let corp: TestIssuer;
let jwks: string;
const hosts: FakeHost[] = [];
const proxies: TestProxy[] = [];

/** A server that records every request (path + Authorization) and answers from `answer`. */
async function fakeHost(
  kind: 'https' | 'http',
  host: string,
  port: number,
  answer: (path: string) => unknown,
): Promise<FakeHost> {
  const seen: Seen[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push({ path, authorization: req.headers.authorization });
    const body = answer(path);
    const text = JSON.stringify(body ?? { error: 'not found' });
    res.writeHead(body === undefined ? 404 : 200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  const server: Server = kind === 'https' ? createHttpsServer(tls, handler) : createHttpServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const h: FakeHost = {
    url: `${kind}://${host}:${typeof addr === 'object' && addr ? addr.port : 0}`,
    seen,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  hosts.push(h);
  return h;
}

/** An OIDC issuer whose discovery names `jwksURI(issuerURL)`; it serves its keys at /keys too. */
async function fakeIssuer(jwksURI: (issuerURL: string) => string): Promise<FakeHost> {
  let self = '';
  const h = await fakeHost('https', '127.0.0.1', 0, (path) => {
    if (path === '/.well-known/openid-configuration')
      return { issuer: self, jwks_uri: jwksURI(self), id_token_signing_alg_values_supported: ['ES256'] };
    if (path === '/keys') return JSON.parse(jwks);
    return undefined;
  });
  self = h.url;
  return h;
}

/** A host on another origin that also serves the issuer's keys (a CDN — or an attacker's listener). */
function keyHost(kind: 'https' | 'http', host: string, port = 0): Promise<FakeHost> {
  return fakeHost(kind, host, port, (path) => (path === '/keys' ? JSON.parse(jwks) : undefined));
}

async function proxyFor(issuerURL: string, extra: Record<string, unknown> = {}): Promise<TestProxy> {
  const tokenFile = join(dir, 'bearer');
  const p = await startProxy({
    withTestIssuer: false,
    policy: POLICY,
    config: {
      issuers: [
        {
          name: 'corp',
          issuer: issuerURL,
          audiences: ['registry.test'],
          caFile,
          bearerTokenFile: tokenFile,
          timeout: '2s',
          ...extra,
        },
      ],
      limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 } },
    },
    // every /token request may fetch again (no 10 s refetch pause), so a refusal is not a rate-limit artefact
    runtime: { env: {}, refetchIntervalMs: 0 },
  });
  proxies.push(p);
  return p;
}

/** An identity token of the `corp` key as issued by `issuerURL` (each test's fake issuer has its own URL). */
function mint(issuerURL: string): Promise<string> {
  return corp.mint({ iss: issuerURL });
}

async function tokenRequest(p: TestProxy, identity: string) {
  const r = await p.requestToken(identity, ['repository:team-a/app:pull']);
  return { status: r.status, body: r.body };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-issuer-trust-'));
  const ca = await createCertificateAuthority('issuer-trust CA');
  const leaf = await ca.issue({
    commonName: 'issuer',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '127.0.0.2'],
  });
  tls = { cert: leaf.certPem, key: leaf.keyPem };
  caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, ca.certPem);
  writeFileSync(join(dir, 'bearer'), `${BEARER}\n`);
  corp = await TestIssuer.create({
    issuer: 'https://corp.test',
    audience: 'registry.test',
    kid: 'corp-1',
    jwkAlg: true,
    claims: { sub: 'workload-7' },
  });
  jwks = corp.jwks;
});

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});

describe('a discovered jwks_uri on another origin is not followed', () => {
  it('another port of the same host: refused (503, OCI body), the key host sees nothing, the log names the fix', async () => {
    const other = await keyHost('https', '127.0.0.1');
    const issuer = await fakeIssuer(() => `${other.url}/keys`);
    const p = await proxyFor(issuer.url);
    const r = await tokenRequest(p, await mint(issuer.url));
    expect(r.status).toBe(503);
    expect(r.body.errors?.[0]?.code).toBe('UNAVAILABLE');
    expect(r.body.token).toBeUndefined();
    // the anonymous caller learns which issuer is unavailable, not the URLs behind it (the log has them)
    expect(JSON.stringify(r.body)).not.toContain(other.url);
    expect(other.seen).toEqual([]);
    // discovery itself is the issuer's own origin: it may carry the bearer token
    expect(
      issuer.seen.some((s) => s.path === '/.well-known/openid-configuration' && s.authorization === `Bearer ${BEARER}`),
    ).toBe(true);
    const line = p.logs.find((l) => l.includes("is not on the issuer's origin"));
    expect(line).toBeDefined();
    expect(line).toMatch(/set jwksURI/);
    // readiness says which check failed, nothing about the issuer's answer
    const ready = await fetch(`${p.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'not ready', reasons: ['identity issuer keys not loaded yet'] });
  });

  it('another host on the same port (127.0.0.2): refused, nothing reaches it', async () => {
    const issuer = await fakeIssuer((self) => `https://127.0.0.2:${new URL(self).port}/keys`);
    let other: FakeHost;
    try {
      other = await keyHost('https', '127.0.0.2', Number(new URL(issuer.url).port));
    } catch {
      // no 127.0.0.2 on this machine: another port proves the same rule (test above)
      return;
    }
    const p = await proxyFor(issuer.url);
    const r = await tokenRequest(p, await mint(issuer.url));
    expect(r.status).toBe(503);
    expect(r.body.errors?.[0]?.code).toBe('UNAVAILABLE');
    expect(other.seen).toEqual([]);
  });

  it('plain http: refused even on the issuer host, no request made', async () => {
    const plain = await keyHost('http', '127.0.0.1');
    const issuer = await fakeIssuer(() => `${plain.url}/keys`);
    const p = await proxyFor(issuer.url);
    const r = await tokenRequest(p, await mint(issuer.url));
    expect(r.status).toBe(503);
    expect(r.body.errors?.[0]?.code).toBe('UNAVAILABLE');
    expect(plain.seen).toEqual([]);
    expect(p.logs.some((l) => l.includes('is not https') && l.includes('set jwksURI'))).toBe(true);
  });

  it('on the issuer origin: followed, with the bearer token (control)', async () => {
    const issuer = await fakeIssuer((self) => `${self}/keys`);
    const p = await proxyFor(issuer.url);
    const r = await tokenRequest(p, await mint(issuer.url));
    expect(r.status).toBe(200);
    expect(issuer.seen.filter((s) => s.path === '/keys').every((s) => s.authorization === `Bearer ${BEARER}`)).toBe(
      true,
    );
    expect(issuer.seen.some((s) => s.path === '/keys')).toBe(true);
  });
});

describe('an explicitly configured jwksURI on another origin', () => {
  it('is used (no discovery), but never receives the bearer token', async () => {
    const other = await keyHost('https', '127.0.0.1');
    const issuer = await fakeIssuer(() => 'https://evil.invalid/keys');
    const p = await proxyFor(issuer.url, { jwksURI: `${other.url}/keys` });
    const r = await tokenRequest(p, await mint(issuer.url));
    expect(r.status).toBe(200);
    expect(r.body.token).toBeDefined();
    expect(other.seen.length).toBeGreaterThan(0);
    expect(other.seen.every((s) => s.authorization === undefined)).toBe(true);
    expect(issuer.seen).toEqual([]); // discovery was not needed
    expect(p.logs.some((l) => l.includes('bearerTokenFile is not sent to this jwksURI'))).toBe(true);
  });
});

describe('where the bearer token may go (pure)', () => {
  const base = {
    name: 'k',
    audiences: ['a'],
    tokenReview: false as const,
    legacyTokens: false,
    clockSkew: 30,
    timeout: 5000,
  };

  it('the issuer origin, the in-cluster API server and the TokenReview URL only', () => {
    expect(bearerTokenOrigins({ ...base, issuer: 'https://kubernetes.default.svc.cluster.local/' })).toEqual([
      'https://kubernetes.default.svc.cluster.local',
    ]);
    expect(
      bearerTokenOrigins({
        ...base,
        issuer: 'https://kubernetes.default.svc.cluster.local',
        apiServer: 'https://10.96.0.1:443',
      }),
    ).toEqual(['https://kubernetes.default.svc.cluster.local', 'https://10.96.0.1']);
    expect(
      bearerTokenOrigins({
        ...base,
        issuer: 'https://k.test',
        jwksURI: 'https://cdn.test/keys',
        tokenReview: { url: 'https://api.test:6443', cacheTTL: 1 },
      }),
    ).toEqual(['https://k.test', 'https://api.test:6443']);
  });

  it('a discovered jwks_uri: https on the issuer origin, nothing else', () => {
    expect(discoveredJwksProblem('https://i.test/realms/x', 'https://i.test/realms/x/certs')).toBeUndefined();
    expect(discoveredJwksProblem('https://i.test', 'https://I.TEST:443/keys')).toBeUndefined();
    expect(discoveredJwksProblem('https://i.test', 'https://i.test.evil.test/keys')).toMatch(
      /not on the issuer's origin.*set jwksURI/,
    );
    expect(discoveredJwksProblem('https://i.test', 'https://i.test:8443/keys')).toMatch(/not on the issuer's origin/);
    expect(discoveredJwksProblem('https://i.test', 'http://i.test/keys')).toMatch(/not https/);
    expect(discoveredJwksProblem('http://i.test', 'http://i.test/keys')).toMatch(/not https/);
    expect(discoveredJwksProblem('https://i.test', 'https://user@i.test@evil.test/keys')).toMatch(
      /not on the issuer's origin/,
    );
    expect(discoveredJwksProblem('https://i.test', 'not a url')).toMatch(/not a URL/);
  });

  it('Google, whose keys live on www.googleapis.com, keeps working through a pinned jwksURI', () => {
    const c = buildConfig({
      service: 'registry.test',
      issuers: [
        { name: 'g', preset: 'google' },
        { name: 'g2', issuer: 'https://accounts.google.com', jwksURI: 'https://example.test/k' },
      ],
    });
    expect(c.issuers[0]).toMatchObject({
      issuer: 'https://accounts.google.com',
      jwksURI: 'https://www.googleapis.com/oauth2/v3/certs',
    });
    expect(c.issuers[1]!.jwksURI).toBe('https://example.test/k');
    expect(buildConfig({}, { issuer: ['https://accounts.google.com'] }).issuers[0]!.jwksURI).toBe(
      'https://www.googleapis.com/oauth2/v3/certs',
    );
    // GitHub Actions and gitlab.com publish keys on their own origin: discovery as before
    expect(buildConfig({ issuers: [{ name: 'gh', preset: 'github-actions' }] }).issuers[0]!.jwksURI).toBeUndefined();
  });
});
