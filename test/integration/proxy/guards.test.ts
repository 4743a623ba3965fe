import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciError } from '../../../src/oci/errors.js';
import type { Guard } from '../../../src/proxy/guards.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { MANIFEST_TYPE, seedManifest } from '../../support/seed.js';

/**
 * The guard stage through the real proxy against a real Distribution registry, with a test-only
 * guard list (the production one is empty): a guard refuses (the client reads the OCI error), rewrites
 * a tag into a digest (the registry is asked for the digest) or passes; a rewrite into another
 * repository is refused, never forwarded.
 */
let stack: RegistryAndProxy;
let digest = '';
let token = '';

const FROZEN = 'tag "frozen" is frozen by a test guard';
const frozenTags: Guard = async ({ route }) =>
  route.kind === 'manifest' && route.reference === 'frozen' ? new OciError(403, 'DENIED', FROZEN) : undefined;
const pinLatest: Guard = async ({ route }) =>
  route.kind === 'manifest' && route.reference === 'latest'
    ? { ...route, reference: digest, path: `/v2/${route.name}/manifests/${digest}` }
    : undefined;
const escape: Guard = async ({ route }) =>
  route.reference === 'escape'
    ? { ...route, name: 'team-b/secret', path: '/v2/team-b/secret/manifests/latest', reference: 'latest' }
    : undefined;

/** What the registry was asked while `fn` ran (its access log). */
async function upstreamSaw(fn: () => Promise<void>): Promise<string> {
  const before = stack.registry.logs().length;
  await fn();
  await new Promise((r) => setTimeout(r, 100)); // the access log line is written after the response
  return stack.registry.logs().slice(before);
}

const get = (path: string, method = 'GET') =>
  fetch(`${stack.proxy.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, accept: MANIFEST_TYPE } });

beforeAll(async () => {
  stack = await startRegistryAndProxy({ runtime: { guards: [frozenTags, pinLatest, escape] } });
  for (const repo of ['team-a/app', 'team-b/secret']) await seedManifest(stack.registry.url, repo);
  const head = await fetch(`${stack.registry.url}/v2/team-a/app/manifests/latest`, {
    method: 'HEAD',
    headers: { accept: MANIFEST_TYPE },
  });
  digest = head.headers.get('docker-content-digest')!;
  expect(digest).toMatch(/^sha256:/);
  token = await stack.proxy.registryToken(['repository:team-a/app:pull'], { team: 'team-a' });
});
afterAll(() => stack?.stop());

describe('the guard stage', () => {
  it('refuses: the client gets 403 DENIED with the guard message, and the registry is never asked', async () => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await get('/v2/team-a/app/manifests/frozen')));
    expect(r.status).toBe(403);
    expect(await r.json()).toEqual({ errors: [{ code: 'DENIED', message: FROZEN }] });
    expect(saw).not.toContain('/manifests/frozen');
    expect(
      stack.proxy.logs.some((l) => l.includes('"guard":"frozenTags"') && l.includes('guard refused the request')),
    ).toBe(true);
  });

  it('rewrites: a tag becomes its digest, which is what the registry receives', async () => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await get('/v2/team-a/app/manifests/latest')));
    expect(r.status).toBe(200);
    expect(r.headers.get('docker-content-digest')).toBe(digest);
    await r.arrayBuffer();
    expect(saw).toContain(`GET /v2/team-a/app/manifests/${digest}`);
    expect(saw).not.toContain('/manifests/latest');
  });

  it('passes: a request no guard cares about is forwarded as it came', async () => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await get('/v2/team-a/app/tags/list')));
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ name: 'team-a/app', tags: ['latest'] });
    expect(saw).toContain('GET /v2/team-a/app/tags/list');
  });

  it('refuses a rewrite into another repository with a 500 and a log line naming the guard, never forwarding it', async () => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await get('/v2/team-a/app/manifests/escape')));
    expect(r.status).toBe(500);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNKNOWN');
    expect(saw).not.toContain('team-b/secret');
    expect(
      stack.proxy.logs.some((l) => l.includes('"guard":"escape"') && l.includes('beyond what was authorized')),
    ).toBe(true);
  });
});
