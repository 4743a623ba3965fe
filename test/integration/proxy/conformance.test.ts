import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Registry } from '../../fixtures/registry.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';
import { MANIFEST_TYPE, pushSmallBlob, seedManifest } from '../../support/seed.js';

/**
 * Issue 18, items 9 and 10: OCI distribution-spec v1.1.1 conformance specs that pass directly
 * against Distribution 2.8 must pass through the proxy. Each case is asked of the registry itself
 * and of the proxy (with a token that covers it), and both must answer the same status.
 *  - Pull / Manifest Upload, "HEAD request to nonexistent manifest", "GET nonexistent manifest":
 *    a reference that is no tag or digest is 404 (the proxy: MANIFEST_UNKNOWN, after authorization;
 *    that it is never forwarded is checked against a recording upstream in test/security);
 *  - Push, "Cross-mounting ... without from": a `mount` alone starts a plain upload (202).
 */
const INVALID = '.INVALID_MANIFEST_NAME';
let stack: RegistryAndProxy;
let registry: Registry;
let proxy: TestProxy;
let push: string;
let del: string;
let layer: string;

interface Answer {
  status: number;
  text: string;
  location?: string;
}

async function call(base: string, method: string, path: string, token?: string, body?: string): Promise<Answer> {
  const r = await request(`${base}${path}`, {
    method: method as 'GET',
    body,
    headers: {
      accept: MANIFEST_TYPE,
      ...(body ? { 'content-type': MANIFEST_TYPE } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
  });
  const text = await r.body.text();
  return { status: r.statusCode, text, location: r.headers.location as string | undefined };
}

const codeOf = (a: Answer) => (JSON.parse(a.text) as { errors: { code: string }[] }).errors[0]!.code;

beforeAll(async () => {
  stack = await startRegistryAndProxy();
  ({ registry, proxy } = stack);
  await seedManifest(registry.url, 'team-a/app');
  layer = await pushSmallBlob(registry.url, 'team-a/app', Buffer.from('a layer to mount'));
  push = await proxy.registryToken(['repository:team-a/app:pull,push']);
  del = await proxy.registryToken(['repository:team-a/scratch:delete']);
});
afterAll(() => stack?.stop());

describe('a manifest reference that is no tag or digest (item 9)', () => {
  it.each([
    ['HEAD', `/v2/team-a/app/manifests/${INVALID}`, 'push'],
    ['GET', `/v2/team-a/app/manifests/${INVALID}`, 'push'],
    ['PUT', '/v2/team-a/app/manifests/-bad', 'push'],
    ['DELETE', `/v2/team-a/scratch/manifests/${INVALID}`, 'del'],
  ] as const)('%s %s: 404 as from Distribution, MANIFEST_UNKNOWN, never forwarded', async (method, path, which) => {
    const body = method === 'PUT' ? '{}' : undefined;
    const direct = await call(registry.url, method, path, undefined, body);
    const proxied = await call(proxy.url, method, path, which === 'push' ? push : del, body);
    expect(direct.status).toBe(404);
    expect(proxied.status).toBe(direct.status);
    if (method === 'HEAD') expect(proxied.text).toBe('');
    else expect(codeOf(proxied)).toBe('MANIFEST_UNKNOWN');
  });

  it('still challenges a client without a token, for the repository', async () => {
    const r = await request(`${proxy.url}/v2/team-a/app/manifests/${INVALID}`);
    await r.body.dump();
    expect(r.statusCode).toBe(401);
    expect(String(r.headers['www-authenticate'])).toContain('scope="repository:team-a/app:pull"');
    // and a token for another repository gets the insufficient_scope challenge, not the 404
    const other = await call(proxy.url, 'GET', `/v2/team-b/app/manifests/${INVALID}`, push);
    expect(other.status).toBe(401);
  });

  it("blobs: a reference that is no digest is 404 BLOB_UNKNOWN; a malformed digest is the registry's own 400", async () => {
    for (const [path, status] of [
      ['/v2/team-a/app/blobs/not-a-digest', 404],
      ['/v2/team-a/app/blobs/sha256:xyz', 400],
    ] as const) {
      const direct = await call(registry.url, 'GET', path);
      const proxied = await call(proxy.url, 'GET', path, push);
      expect(direct.status, path).toBe(status);
      expect(proxied.status, path).toBe(status);
      expect(codeOf(proxied), path).toBe(status === 404 ? 'BLOB_UNKNOWN' : 'DIGEST_INVALID');
    }
  });
});

describe('a cross-repository mount without its other half (item 10)', () => {
  it.each(['mount', 'from'])(
    'POST …/blobs/uploads/ with a lone `%s` starts a plain upload (202), as Distribution does',
    async (lone) => {
      const query = lone === 'mount' ? `?mount=${layer}` : '?from=team-a/app';
      const direct = await call(registry.url, 'POST', `/v2/team-a/app/blobs/uploads/${query}`);
      const proxied = await call(proxy.url, 'POST', `/v2/team-a/app/blobs/uploads/${query}`, push);
      expect(direct.status).toBe(202);
      expect(proxied.status).toBe(202);
      expect(proxied.location).toMatch(/\/v2\/team-a\/app\/blobs\/uploads\/[A-Za-z0-9_-]+/);
      // nothing was mounted: the location is an upload session, not the blob
      expect(proxied.location).not.toContain(layer);
    },
  );

  it('with both halves, the mount still happens (201)', async () => {
    const r = await call(proxy.url, 'POST', `/v2/team-a/app/blobs/uploads/?mount=${layer}&from=team-a/app`, push);
    expect(r.status).toBe(201);
  });
});
