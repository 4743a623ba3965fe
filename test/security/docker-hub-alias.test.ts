import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { startContainerd } from '../fixtures/containerd.js';
import { buildOciImage } from '../fixtures/images.js';
import { startRegistry, type Registry } from '../fixtures/registry.js';
import { startProxy, type TestProxy } from '../helpers/server.js';
import { MANIFEST_TYPE, pushSmallBlob, seedManifest } from '../support/seed.js';
import { requireTool } from '../support/tools.js';

/**
 * Issue 18, item 1: on an upstream standing for Docker Hub, `hub/secret` and `hub/library/secret`
 * reach the same upstream repository (`library/secret`). Policy, the token's `access`, the
 * challenge and the denial must all judge that one name, whichever spelling the client used:
 * `/v2/hub/secret/…`, containerd's `/v2/secret/…?ns=docker.io`, or `scope=repository:hub/secret:pull`
 * at /token. A real Distribution registry plays the pull-through cache (`registry: docker.io`).
 */
const POLICY = `
rules:
  - name: ci-pulls-hub
    actions: [pull]
    when: identity.issuerName == "ci" && request.upstream == "hub"
  - name: ci-pushes-hub-uploads
    actions: [push]
    when: identity.issuerName == "ci" && request.repository == "hub/library/uploads"
  - name: anonymous-pulls-hub
    actions: [pull]
    when: identity.issuerName == "anonymous" && request.upstream == "hub"
  - name: nobody-pulls-secret
    effect: deny
    actions: [pull]
    when: request.repository.startsWith("hub/library/secret")
`;

interface OciBody {
  errors: { code: string; message: string }[];
}

let registry: Registry;
let proxy: TestProxy;
let identity: string;

beforeAll(async () => {
  registry = await startRegistry();
  await seedManifest(registry.url, 'library/nginx');
  await seedManifest(registry.url, 'library/secret');
  proxy = await startProxy({
    policy: POLICY,
    config: {
      anonymous: true,
      explainDenials: true,
      upstreams: [{ name: 'hub', prefix: 'hub/', url: registry.url, registry: 'docker.io' }],
    },
  });
  identity = await proxy.mintIdentity();
});

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

async function get(path: string, token?: string) {
  const r = await request(`${proxy.url}${path}`, {
    headers: { accept: MANIFEST_TYPE, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  const text = await r.body.text();
  return {
    status: r.statusCode,
    challenge: String(r.headers['www-authenticate'] ?? ''),
    text,
    body: (text ? JSON.parse(text) : undefined) as OciBody,
  };
}

async function tokenFor(scopes: string[]) {
  const r = await proxy.requestToken(identity, scopes);
  expect(r.status).toBe(200);
  const claims = decodeJwt(r.body.token!) as {
    access: { name: string; actions: string[] }[];
    refused?: { name: string }[];
  };
  return { token: r.body.token!, access: claims.access, refused: claims.refused ?? [] };
}

describe('a deny rule on hub/library/… holds for every spelling', () => {
  it('/token decides and grants `repository:hub/secret:pull` as hub/library/secret, and refuses it', async () => {
    const t = await tokenFor(['repository:hub/secret:pull']);
    expect(t.access).toEqual([]);
    expect(t.refused.map((r) => r.name)).toEqual(['hub/library/secret']);
    for (const path of [
      '/v2/hub/secret/manifests/latest',
      '/v2/hub/library/secret/manifests/latest',
      '/v2/secret/manifests/latest?ns=docker.io',
    ]) {
      const r = await get(path, t.token);
      expect(r.status, path).toBe(403);
      expect(r.body.errors[0]!.code, path).toBe('DENIED');
      expect(r.body.errors[0]!.message, path).toContain('hub/library/secret');
    }
  });

  it('anonymous requests through the short name or mirror mode get the challenge for the canonical name', async () => {
    for (const path of [
      '/v2/hub/secret/manifests/latest',
      '/v2/secret/manifests/latest?ns=docker.io',
      '/v2/library/secret/manifests/latest?ns=docker.io',
      '/v2/hub/secret/tags/list',
    ]) {
      const r = await get(path);
      expect(r.status, path).toBe(401);
      expect(r.challenge, path).toContain('scope="repository:hub/library/secret:pull"');
    }
    // the same anonymous rule does let the other official image through, in every spelling
    for (const path of ['/v2/hub/nginx/manifests/latest', '/v2/nginx/manifests/latest?ns=docker.io']) {
      expect((await get(path)).status, path).toBe(200);
    }
  });

  it('a token for the other spelling of an allowed repository opens no denied one', async () => {
    const t = await tokenFor(['repository:hub/nginx:pull', 'repository:hub/library/secret:pull']);
    expect(t.access.map((a) => a.name)).toEqual(['hub/library/nginx']);
    expect((await get('/v2/hub/secret/manifests/latest', t.token)).status).toBe(403);
  });
});

describe('one token covers both spellings of a repository', () => {
  it('a token asked for hub/nginx pulls hub/library/nginx, and the reverse', async () => {
    const short = await tokenFor(['repository:hub/nginx:pull']);
    expect(short.access).toEqual([{ type: 'repository', name: 'hub/library/nginx', actions: ['pull'] }]);
    const long = await tokenFor(['repository:hub/library/nginx:pull']);
    for (const token of [short.token, long.token]) {
      for (const path of [
        '/v2/hub/nginx/manifests/latest',
        '/v2/hub/library/nginx/manifests/latest',
        '/v2/nginx/manifests/latest?ns=docker.io',
      ]) {
        const r = await get(path, token);
        expect(r.status, path).toBe(200);
        expect(JSON.parse(r.text)).toMatchObject({ mediaType: MANIFEST_TYPE });
      }
    }
  });

  it('tags/list names the canonical repository', async () => {
    const { token } = await tokenFor(['repository:hub/nginx:pull']);
    const r = await get('/v2/hub/nginx/tags/list', token);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ name: 'hub/library/nginx', tags: ['latest'] });
  });

  it('an upload started under the short name continues at the canonical Location, with the same token', async () => {
    const { token } = await tokenFor(['repository:hub/uploads:pull,push']);
    const start = await request(`${proxy.url}/v2/hub/uploads/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    await start.body.dump();
    expect(start.statusCode).toBe(202);
    const location = new URL(String(start.headers.location), proxy.url);
    expect(location.pathname).toMatch(/^\/v2\/hub\/library\/uploads\/blobs\/uploads\/[A-Za-z0-9_-]+$/);
    const data = Buffer.from('canonical upload');
    const { createHash } = await import('node:crypto');
    location.searchParams.set('digest', `sha256:${createHash('sha256').update(data).digest('hex')}`);
    const put = await request(location, {
      method: 'PUT',
      body: data,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    });
    await put.body.dump();
    expect(put.statusCode).toBe(201);
    expect(await registry.repositories()).toContain('library/uploads');
    // the short name never became a repository of its own upstream
    expect(await registry.repositories()).not.toContain('uploads');
  });

  it('a mount from the short spelling of the source needs pull on the canonical source', async () => {
    const digest = await pushSmallBlob(registry.url, 'library/secret', Buffer.from('secret layer'));
    const { token } = await tokenFor(['repository:hub/uploads:pull,push', 'repository:hub/secret:pull']);
    const r = await request(`${proxy.url}/v2/hub/uploads/blobs/uploads/?mount=${digest}&from=hub/secret`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    await r.body.dump();
    // hub/library/secret may not be pulled: the mount is dropped, a plain upload starts
    expect(r.statusCode).toBe(202);
    expect(String(r.headers.location)).toContain('/v2/hub/library/uploads/blobs/uploads/');
  });
});

describe('real clients', () => {
  // no anonymous access here, so that clients go through the challenge and /token
  let authed: TestProxy;
  let id: string;
  beforeAll(async () => {
    authed = await startProxy({
      policy: POLICY,
      config: { upstreams: [{ name: 'hub', prefix: 'hub/', url: registry.url, registry: 'docker.io' }] },
    });
    id = await authed.mintIdentity();
  });
  afterAll(() => authed?.stop());

  const skopeo = (args: string[]) => promisify(execFile)(requireTool('skopeo'), args, { timeout: 60_000 });
  const lastDecision = () =>
    authed.logs
      .filter((l) => l.includes('"audit":"token"'))
      .map((l) => JSON.parse(l) as { requested: string[]; granted?: string[] })
      .at(-1);

  it('skopeo, asking /token for hub/nginx, is let through with the canonical grant', async () => {
    const inspect = (ref: string) =>
      skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', `x:${id}`, `docker://${authed.host}/${ref}`]);
    const { stdout } = await inspect('hub/nginx:latest');
    expect(JSON.parse(stdout)).toMatchObject({ mediaType: MANIFEST_TYPE });
    expect(lastDecision()).toMatchObject({
      requested: ['repository:hub/library/nginx:pull'],
      granted: ['repository:hub/library/nginx:pull'],
    });
    await expect(inspect('hub/secret:latest')).rejects.toThrow(/denied/i);
  });

  it('containerd pulls hub/tools with a token granted for hub/library/tools, and is refused hub/secret with the reason', async () => {
    const image = buildOciImage(join(mkdtempSync(join(tmpdir(), 'rap-hub-alias-')), 'img'), { layers: 1 });
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      image.ref,
      `docker://${new URL(registry.url).host}/library/tools:latest`,
    ]);
    const containerd = await startContainerd();
    try {
      await containerd.pull(`${authed.host}/hub/tools:latest`, { user: `x:${id}` });
      expect(await containerd.images()).toContain(`${authed.host}/hub/tools:latest`);
      expect(lastDecision()).toMatchObject({ granted: ['repository:hub/library/tools:pull'] });
      await expect(containerd.pull(`${authed.host}/hub/secret:latest`, { user: `x:${id}` })).rejects.toThrow(
        /403 Forbidden: .*refused pull on repository hub\/library\/secret: denied by rule nobody-pulls-secret/,
      );
    } finally {
      await containerd.stop();
    }
  });
});
