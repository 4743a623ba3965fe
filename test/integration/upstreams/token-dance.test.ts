import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { selfSignedCertificateForKey } from '../../../src/pki/certificates.js';
import { generatePrivateKeyPem, signingKeyFromPem, type SigningKey } from '../../../src/token/signing-keys.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, freePort, type Registry } from '../../fixtures/registry.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { requireTool } from '../../support/tools.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * The registry-token dance as Harbor, GHCR, Docker Hub and Quay make the proxy do it: a stock
 * Distribution registry in token mode whose advertised realm is on another host (127.0.0.2, as
 * auth.docker.io is for registry-1.docker.io), in front of a token service of the test's own speaking
 * Docker's token spec, which accepts exactly a Harbor robot account (`$` and `+` in its name).
 */

const run = promisify(execFile);
const ROBOT = 'robot$library+ci';
const PASSWORD = 's3cret';
let registry: Registry;
let tokenServers: Server[] = [];
let tokenPort: number;
let dir: string;
const proxies: TestProxy[] = [];
/** What the token service answers: Docker Hub style (`token`, `expires_in`, `issued_at`) or OAuth2 style (`access_token` alone). */
let shape: 'token' | 'access_token' = 'token';
/** Grant only pull, whatever is asked (a robot account without push rights). */
let narrow = false;
const issued: { host: string; user: string; account: string | null; scopes: string[] }[] = [];

function parseScope(s: string): { type: string; name: string; actions: string[] } {
  const rest = s.slice(s.indexOf(':') + 1);
  const actions = rest.slice(rest.lastIndexOf(':') + 1).split(',');
  return {
    type: s.slice(0, s.indexOf(':')),
    name: rest.slice(0, rest.lastIndexOf(':')),
    actions: narrow ? actions.filter((a) => a === 'pull') : actions,
  };
}

async function answerToken(key: SigningKey, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString('utf8');
  const user = basic.slice(0, basic.lastIndexOf(':'));
  if (user !== ROBOT || basic.slice(basic.lastIndexOf(':') + 1) !== PASSWORD) {
    res.writeHead(401, { 'content-type': 'application/json' });
    return void res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  }
  const scopes = url.searchParams.getAll('scope');
  issued.push({ host: req.socket.localAddress ?? '', user, account: url.searchParams.get('account'), scopes });
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ access: scopes.map(parseScope) })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: key.kid, x5c: key.x5c! })
    .setIssuer('harbor-token-service')
    .setSubject(ROBOT)
    .setAudience('harbor-registry')
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti(randomUUID())
    .sign(key.privateKey);
  const body =
    shape === 'token'
      ? { token, expires_in: 300, issued_at: new Date(now * 1000).toISOString() }
      : { access_token: token };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function proxyWith(auth: Record<string, unknown>): Promise<TestProxy> {
  const passwordFile = join(dir, 'robot-secret');
  const p = await startProxy({
    config: {
      upstream: { url: registry.url, auth: { type: 'registry-token', username: ROBOT, passwordFile, ...auth } },
    },
  });
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-dance-'));
  const keyPem = generatePrivateKeyPem('ES256');
  const certPem = await selfSignedCertificateForKey(keyPem, 'harbor token service');
  writeFileSync(join(dir, 'bundle.crt'), certPem);
  writeFileSync(join(dir, 'robot-secret'), `${PASSWORD}\n`);
  const key = signingKeyFromPem(keyPem, 'harbor', certPem);
  tokenPort = await freePort();
  // The same service on two hosts: 127.0.0.2 is the realm the registry advertises, 127.0.0.1 the one configured instead.
  for (const host of ['127.0.0.1', '127.0.0.2']) {
    const server = createServer((req, res) => void answerToken(key, req, res));
    await new Promise<void>((r) => server.listen(tokenPort, host, r));
    tokenServers.push(server);
  }
  registry = await startRegistry({
    tokenAuth: {
      realm: `http://127.0.0.2:${tokenPort}/token`,
      service: 'harbor-registry',
      issuer: 'harbor-token-service',
      rootCertBundle: join(dir, 'bundle.crt'),
    },
  });
});
afterAll(async () => {
  for (const p of proxies) await p.stop();
  await registry?.stop();
  for (const s of tokenServers) await new Promise((r) => s.close(r));
  tokenServers = [];
});

async function manifestStatus(proxy: TestProxy, repo: string, method = 'GET'): Promise<Response> {
  const t = await proxy.registryToken([`repository:${repo}:pull`]);
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
  return fetch(`${proxy.url}/v2/${repo}/manifests/v1`, { method, headers: { authorization: `Bearer ${t}`, accept } });
}

describe('the registry-token dance against a realm on another host (Docker Hub, Harbor, GHCR, Quay)', () => {
  it("never sends the proxy's credentials to an unlisted realm host: 502 saying the realm is not trusted, the host only in the log", async () => {
    for (const realmHosts of [[], ['127.0.0.3', `127.0.0.2:${tokenPort + 1}`, '127.0.0.1']]) {
      const proxy = await proxyWith({ realmHosts });
      const before = issued.length;
      const r = await manifestStatus(proxy, 'team-a/app');
      expect(r.status).toBe(502);
      expect(r.statusText).toBe("Bad Gateway (upstream's token realm is not trusted)");
      const body = await r.text();
      expect(body).toContain("upstream registry's token realm is not trusted");
      expect(body).not.toContain('127.0.0.2');
      expect(issued.length).toBe(before);
      expect(proxy.logs.find((l) => l.includes('realmHosts'))).toContain(`127.0.0.2:${tokenPort}`);
    }
  });

  it('with the realm host listed, a Harbor robot account (robot$library+ci) pushes and pulls with skopeo; one token per scope set', async () => {
    const proxy = await proxyWith({ realmHosts: ['127.0.0.2'] });
    const before = issued.length;
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity();
    const skopeo = requireTool('skopeo');
    await run(skopeo, [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    const { stdout } = await run(skopeo, [
      'inspect',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    expect(JSON.parse(stdout).Name).toBe(`${proxy.host}/team-a/app`);
    const mine = issued.slice(before);
    expect(mine.length).toBeGreaterThan(0);
    // `$` and `+` survive Basic and the account parameter; only the advertised host was asked
    expect(mine.every((i) => i.user === ROBOT && i.account === ROBOT && i.host === '127.0.0.2')).toBe(true);
    expect(mine.some((i) => i.scopes.includes('repository:team-a/app:pull,push'))).toBe(true);
    expect(new Set(mine.map((i) => i.scopes.join(' '))).size).toBe(mine.length);
  });

  it('upstream.auth.realm replaces the advertised realm; an access_token without expires_in is used and cached', async () => {
    shape = 'access_token';
    try {
      const proxy = await proxyWith({ realm: `http://127.0.0.1:${tokenPort}/token` });
      const before = issued.length;
      for (const method of ['HEAD', 'GET'])
        expect((await manifestStatus(proxy, 'team-a/app', method)).status).toBe(200);
      expect(issued.slice(before)).toEqual([
        { host: '127.0.0.1', user: ROBOT, account: ROBOT, scopes: ['repository:team-a/app:pull'] },
      ]);
    } finally {
      shape = 'token';
    }
  });

  it("a token narrower than asked is used as is: the upstream's insufficient_scope reaches the client as 403 DENIED", async () => {
    narrow = true;
    try {
      const proxy = await proxyWith({ realmHosts: ['127.0.0.2'] });
      const t = await proxy.registryToken(['repository:team-a/narrow:pull,push']);
      const r = await fetch(`${proxy.url}/v2/team-a/narrow/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t}` },
      });
      expect(r.status).toBe(403);
      const body = (await r.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]).toMatchObject({ code: 'DENIED', message: expect.stringContaining('insufficient_scope') });
      expect(r.headers.get('www-authenticate')).toBeNull();
      expect(issued.at(-1)!.scopes).toEqual(['repository:team-a/narrow:pull,push']);
      expect((await manifestStatus(proxy, 'team-a/app')).status).toBe(200);
    } finally {
      narrow = false;
    }
  });
});

describe("the upstream's own refusals pass through (Harbor's 412, Docker Hub's 429)", () => {
  let upstream: RecordingUpstream;
  let proxy: TestProxy;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startProxy({ upstream: upstream.url });
    proxies.push(proxy);
  });
  afterAll(() => upstream?.stop());

  it("Harbor's 412 PROJECTPOLICYVIOLATION reaches the client with its body", async () => {
    const body = JSON.stringify({
      errors: [
        {
          code: 'PROJECTPOLICYVIOLATION',
          message: 'current image with 4 vulnerabilities cannot be pulled due to configured policy',
        },
      ],
    });
    upstream.handle((_req, res) => {
      res.writeHead(412, { 'content-type': 'application/json; charset=utf-8', 'x-harbor-csrf-token': 'x' });
      res.end(body);
    });
    const r = await manifestStatus(proxy, 'team-a/blocked');
    expect(r.status).toBe(412);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await r.text()).toBe(body);
  });

  it("Docker Hub's 429 keeps Retry-After and the ratelimit headers; a HEAD stays a HEAD; ratelimit-remaining is a gauge", async () => {
    const limits = { 'ratelimit-limit': '100;w=21600', 'docker-ratelimit-source': '203.0.113.7' };
    upstream.handle((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(429, {
          'content-type': 'application/json',
          'retry-after': '3600',
          ...limits,
          'ratelimit-remaining': '0;w=21600',
        });
        return void res.end(
          '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}',
        );
      }
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': '1234',
        ...limits,
        'ratelimit-remaining': '76;w=21600',
      });
      res.end();
    });
    const r = await manifestStatus(proxy, 'team-a/popular');
    expect(r.status).toBe(429);
    expect(
      Object.fromEntries(
        ['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'docker-ratelimit-source'].map((h) => [
          h,
          r.headers.get(h),
        ]),
      ),
    ).toEqual({
      'retry-after': '3600',
      'ratelimit-remaining': '0;w=21600',
      ...limits,
    });
    expect(await r.text()).toContain('TOOMANYREQUESTS');
    const metrics = async () =>
      (await (await fetch(`${proxy.url}/metrics`)).text())
        .split('\n')
        .find((l) => l.startsWith('rap_upstream_ratelimit_remaining '));
    expect(await metrics()).toBe('rap_upstream_ratelimit_remaining 0');
    const head = await manifestStatus(proxy, 'team-a/popular', 'HEAD');
    expect([head.status, head.headers.get('content-length')]).toEqual([200, '1234']);
    expect(upstream.requests.at(-1)!.method).toBe('HEAD');
    expect(await metrics()).toBe('rap_upstream_ratelimit_remaining 76');
  });
});
