import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { startProxy, type TestProxy } from '../../helpers/server.js';

let proxy: TestProxy;

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

async function getToken(query: string, auth?: string) {
  const res = await fetch(`${proxy.url}/token?${query}`, { headers: auth ? { authorization: auth } : {} });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

async function postToken(form: Record<string, string>) {
  const res = await fetch(`${proxy.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

beforeAll(async () => {
  proxy = await startProxy();
});
afterAll(async () => {
  await proxy.stop();
});

describe('GET /token (skopeo, podman, docker)', () => {
  it('issues a registry token with exactly the granted access', async () => {
    const id = await proxy.mintIdentity({ team: 'team-a' });
    const { status, body, headers } = await getToken(
      'service=registry.test&scope=repository:team-a/app:pull,push&scope=repository:team-b/app:pull&scope=repository:shared/base:pull,push&account=x',
      basic('anything', id),
    );
    expect(status).toBe(200);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBe(300);
    expect(new Date(body.issued_at).toISOString()).toBe(body.issued_at);
    const claims = decodeJwt(body.token);
    expect(claims.access).toEqual([
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'shared/base', actions: ['pull'] },
    ]);
    expect(claims.aud).toBe('registry.test');
    expect(claims.iss).toBe(proxy.url);
    expect(claims.sub).toBe('ci:job-42');
    expect(typeof claims.jti).toBe('string');
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
    const header = decodeProtectedHeader(body.token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(header.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    // the published JWKS verifies it
    const jwks = await (await fetch(`${proxy.url}/.well-known/jwks.json`)).json();
    await expect(
      jwtVerify(body.token, createLocalJWKSet(jwks), { audience: 'registry.test', issuer: proxy.url }),
    ).resolves.toBeTruthy();
  });

  it('answers a request without scope (docker login) with an empty access list', async () => {
    const { status, body } = await getToken('service=registry.test', basic('u', await proxy.mintIdentity()));
    expect(status).toBe(200);
    expect(decodeJwt(body.token).access).toEqual([]);
  });

  it('returns a refresh token only when offline_token=true, bounded by the identity token', async () => {
    const id = await proxy.mintIdentity({}, { ttl: 900 });
    const plain = await getToken('service=registry.test&client_id=docker', basic('u', id));
    expect(plain.body.refresh_token).toBeUndefined();
    const offline = await getToken(
      'service=registry.test&client_id=docker&offline_token=true&account=u',
      basic('u', id),
    );
    expect(typeof offline.body.refresh_token).toBe('string');
    expect(decodeJwt(offline.body.refresh_token).exp).toBe(decodeJwt(id).exp);
    // docker later trades it with POST grant_type=refresh_token
    const refreshed = await postToken({
      grant_type: 'refresh_token',
      refresh_token: offline.body.refresh_token,
      service: 'registry.test',
      scope: 'repository:team-a/app:pull',
      client_id: 'docker',
    });
    expect(refreshed.status).toBe(200);
    expect(decodeJwt(refreshed.body.token).access).toEqual([
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
    ]);
    expect(decodeJwt(refreshed.body.token).sub).toBe('ci:job-42');
    // a refresh token is not a registry token, and a registry token is not a refresh token
    const asAccess = await fetch(`${proxy.url}/v2/`, {
      headers: { authorization: `Bearer ${offline.body.refresh_token}` },
    });
    expect(asAccess.status).toBe(401);
    const asRefresh = await postToken({
      grant_type: 'refresh_token',
      refresh_token: refreshed.body.token,
      service: 'registry.test',
    });
    expect(asRefresh.status).toBe(401);
  });

  it('refuses a wrong service with 400', async () => {
    const { status, body } = await getToken(
      'service=evil.test&scope=repository:team-a/app:pull',
      basic('u', await proxy.mintIdentity()),
    );
    expect(status).toBe(400);
    expect(body.errors[0].message).toContain('registry.test');
  });

  it('refuses invalid scopes with 400', async () => {
    for (const scope of [
      'repository:UPPER/case:pull',
      'repository:a/../b:pull',
      'nonsense',
      'repository:a:pull;rm',
      'registry:other:*',
    ]) {
      const { status } = await getToken(
        `service=registry.test&scope=${encodeURIComponent(scope)}`,
        basic('u', await proxy.mintIdentity()),
      );
      expect(status, scope).toBe(400);
    }
  });

  it('asks for credentials with a Basic challenge when none are sent', async () => {
    const { status, headers, body } = await getToken('service=registry.test&scope=repository:team-a/app:pull');
    expect(status).toBe(401);
    expect(headers.get('www-authenticate')).toBe(`Basic realm="${proxy.url}/token"`);
    expect(body.errors[0].code).toBe('UNAUTHORIZED');
  });

  it('explains invalid identity tokens without echoing them', async () => {
    const expired = await proxy.mintIdentity({}, { ttl: -120 });
    const r1 = await getToken('service=registry.test', basic('u', expired));
    expect(r1.status).toBe(401);
    expect(r1.body.errors[0].message).toMatch(/expired/);
    expect(JSON.stringify(r1.body)).not.toContain(expired);
    const r2 = await getToken('service=registry.test', basic('u', 'hunter2'));
    expect(r2.status).toBe(401);
    expect(r2.body.errors[0].message).toMatch(/not a JWT/);
    expect(JSON.stringify(r2.body)).not.toContain('hunter2');
    expect(proxy.logs.join('\n')).not.toContain(expired);
    expect(proxy.logs.join('\n')).not.toContain('hunter2');
  });
});

describe('POST /token (containerd, kubelet)', () => {
  it("takes containerd's exact form with every scope space-separated in one parameter", async () => {
    const id = await proxy.mintIdentity();
    const { status, body } = await postToken({
      grant_type: 'password',
      client_id: 'containerd-client',
      username: 'anything',
      password: id,
      service: 'registry.test',
      scope: 'repository:team-a/app:pull repository:shared/base:pull repository:team-z/x:pull',
    });
    expect(status).toBe(200);
    expect(body.expires_in).toBe(300);
    expect(decodeJwt(body.access_token).access).toEqual([
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
      { type: 'repository', name: 'shared/base', actions: ['pull'] },
    ]);
  });

  it('answers bad grants with 400 and bad passwords with 401 (containerd then falls back to GET)', async () => {
    expect((await postToken({ grant_type: 'client_credentials', service: 'registry.test' })).status).toBe(400);
    const bad = await postToken({ grant_type: 'password', username: 'u', password: 'x.y.z', service: 'registry.test' });
    expect(bad.status).toBe(401);
    expect(bad.body.error).toBe('invalid_grant');
  });

  it('refuses a non-form body and an oversized one', async () => {
    const json = await fetch(`${proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(json.status).toBe(400);
    const big = await fetch(`${proxy.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `scope=${'a'.repeat(70_000)}`,
    });
    expect(big.status).toBe(413);
  });

  it('logs one audit line per decision with the grant and the rules, never the token', async () => {
    const id = await proxy.mintIdentity({ sub: 'audit-subject' });
    await postToken({
      grant_type: 'password',
      username: 'u',
      password: id,
      service: 'registry.test',
      scope: 'repository:team-a/app:pull,push',
    });
    const lines = proxy.logs.filter((l) => l.includes('"audit":"token"') && l.includes('audit-subject'));
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({
      issuer: 'ci',
      subject: 'audit-subject',
      granted: ['repository:team-a/app:pull,push'],
      rules: ['ci-owns-its-prefix'],
    });
    expect(lines[0]).not.toContain(id);
  });
});
