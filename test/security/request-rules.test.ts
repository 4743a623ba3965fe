import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { MANIFEST_TYPE, pushSmallBlob } from '../support/seed.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../helpers/registry-and-proxy.js';

/**
 * Getting past request-time rules and manifest limits (issue 21), against a real Distribution
 * registry: another spelling of a protected tag, a digest PUT that names tags, deleting a protected
 * tag by name or by digest, a chunked manifest over the limit, a cached "absent" outliving this
 * proxy's own write, and a manifest PUT under a digest its body does not hash to. Each checks the answer and what the registry saw.
 */
const POLICY = `
rules:
  - name: ci-owns-its-prefix
    actions: [pull, push, delete, "*"]
    when: identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")
  - name: release-tags-are-immutable
    effect: deny
    phase: request
    actions: [push, delete]
    when: >-
      has(request.tag) && request.tag.matches("^v[0-9]+[.][0-9]+[.][0-9]+$") &&
      (request.method == "DELETE" ||
       (request.method == "PUT" && upstream.tagExists && request.digest != upstream.digest))
  - name: no-blocked-manifests
    effect: deny
    phase: request
    actions: [push]
    when: request.kind == "manifest" && request.method == "PUT" && claims.blocked.exists(d, d == request.digest)
`;
const REPO = 'team-a/sec';
let stack: RegistryAndProxy;
let token = '';
let a: Buffer;
let b: Buffer;
const sha = (x: Buffer) => `sha256:${createHash('sha256').update(x).digest('hex')}`;

async function manifest(salt: string): Promise<Buffer> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, salt }),
  );
  const digest = await pushSmallBlob(stack.registry.url, REPO, config);
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length },
      layers: [],
    }),
  );
}

const send = (method: string, ref: string, body?: Buffer, query = '') =>
  fetch(`${stack.proxy.url}/v2/${REPO}/manifests/${ref}${query}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': MANIFEST_TYPE } : {}) },
    ...(body ? { body: new Uint8Array(body) } : {}),
  });

/** A manifest PUT without Content-Length (Transfer-Encoding: chunked), in pieces. */
function chunkedPut(ref: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  const url = new URL(`${stack.proxy.url}/v2/${REPO}/manifests/${ref}`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': MANIFEST_TYPE } },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve({ status: 0, body: err.code }) : reject(err),
    );
    for (const c of chunks) req.write(c);
    req.end();
  });
}

async function upstreamDigest(tag: string): Promise<string> {
  const r = await fetch(`${stack.registry.url}/v2/${REPO}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST_TYPE },
  });
  return r.status === 200 ? r.headers.get('docker-content-digest')! : '';
}

/** The registry's access log lines written while `fn` ran. */
async function upstreamSaw(fn: () => Promise<void>): Promise<string> {
  const before = stack.registry.logs().length;
  await fn();
  await new Promise((r) => setTimeout(r, 150));
  return stack.registry.logs().slice(before);
}

let blocked: Buffer;
let blockedToken = '';

beforeAll(async () => {
  stack = await startRegistryAndProxy({ policy: POLICY });
  [a, b, blocked] = [await manifest('a'), await manifest('b'), await manifest('blocked')];
  token = await stack.proxy.registryToken([`repository:${REPO}:pull,push,delete`], { blocked: [] });
  // an identity whose token claim lists a manifest it may not push (no-blocked-manifests)
  blockedToken = await stack.proxy.registryToken([`repository:${REPO}:pull,push`], { blocked: [sha(blocked)] });
  expect((await send('PUT', 'v1.0.0', a)).status).toBe(201);
});
afterAll(() => stack?.stop());

describe('request-time rules cannot be walked around', () => {
  it.each([
    ['an encoded letter', '%761.0.0', 400],
    ['a trailing slash', 'v1.0.0/', 404],
    ['an encoded slash after it', 'v1.0.0%2F', 400],
  ])('another spelling of the tag (%s) is refused before the upstream', async (_name, ref, status) => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await send('PUT', ref, b)));
    expect(r.status).toBe(status);
    expect(saw).not.toMatch(/"PUT \/v2\/team-a\/sec\/manifests/);
    expect(await upstreamDigest('v1.0.0')).toBe(sha(a));
  });

  it('a digest PUT naming a protected tag in its query (?tag=) is refused', async () => {
    let r!: Response;
    const saw = await upstreamSaw(async () => void (r = await send('PUT', sha(b), b, '?tag=v1.0.0')));
    expect(r.status).toBe(403);
    expect((await r.json()).errors[0].message).toContain('(?tag=) is refused while request-time rules apply');
    expect(saw).not.toContain(sha(b));
  });

  it('deleting a protected tag is refused by name and by digest (which would delete the tag with it)', async () => {
    const byName = await send('DELETE', 'v1.0.0');
    expect(byName.status).toBe(403);
    const byDigest = await send('DELETE', sha(a));
    expect(byDigest.status).toBe(403);
    expect((await byDigest.json()).errors[0].message).toContain(
      'was refused DELETE manifest team-a/sec:v1.0.0: denied by rule release-tags-are-immutable',
    );
    expect(await upstreamDigest('v1.0.0')).toBe(sha(a));
  });

  it('a chunked manifest over the limit gets 413 and the upstream sees nothing; under it, the exact bytes land', async () => {
    let r!: { status: number; body: string };
    const over = Array.from({ length: 5 }, () => Buffer.alloc(1 << 20, 0x20));
    const saw = await upstreamSaw(async () => void (r = await chunkedPut('huge', over)));
    // 413 when the client reads the answer before it finishes sending; a reset otherwise (the body is never drained).
    expect([413, 0]).toContain(r.status);
    if (r.status === 413) expect(r.body).toContain('limits.manifestMaxBytes is 4194304 bytes');
    expect(saw).not.toContain('/manifests/huge');
    const small = await chunkedPut('v9.9.9', [b.subarray(0, 10), b.subarray(10)]);
    expect(small.status, small.body).toBe(201);
    expect(await upstreamDigest('v9.9.9')).toBe(sha(b));
  });

  it('a cached "absent" does not outlive this proxy writing the tag (tagLookupTTL is 5 s)', async () => {
    expect((await send('PUT', 'v2.0.0', a)).status).toBe(201); // the lookup said absent, and was cached
    const overwrite = await send('PUT', 'v2.0.0', b); // within the TTL
    expect(overwrite.status).toBe(403);
    expect(await upstreamDigest('v2.0.0')).toBe(sha(a));
  });

  describe('request.digest is what the pushed manifest hashes to, not what the client claims', () => {
    const put = (ref: string, body: Buffer) =>
      fetch(`${stack.proxy.url}/v2/${REPO}/manifests/${ref}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${blockedToken}`, 'content-type': MANIFEST_TYPE },
        body: new Uint8Array(body),
      });

    it('the blocked manifest is refused by tag and by its digest', async () => {
      for (const ref of ['blocked-tag', sha(blocked)]) {
        const r = await put(ref, blocked);
        expect(r.status).toBe(403);
        const body = await r.json();
        expect(body.errors[0].code).toBe('DENIED');
        expect(body.errors[0].message).toContain('denied by rule no-blocked-manifests');
      }
      expect(await upstreamDigest('blocked-tag')).toBe('');
    });

    it('under another digest (one the rule allows) it is 400 DIGEST_INVALID from the proxy; the upstream sees nothing', async () => {
      let r!: Response;
      const saw = await upstreamSaw(async () => void (r = await put(sha(a), blocked)));
      expect(r.status).toBe(400);
      expect((await r.json()).errors[0]).toMatchObject({
        code: 'DIGEST_INVALID',
        message: `the manifest's digest is ${sha(blocked)}, not ${sha(a)} as its reference claims`,
      });
      expect(saw, saw).not.toMatch(/"PUT \/v2\/team-a\/sec\/manifests/);
    });

    it('with no rule reading request.digest the proxy does not hash: Distribution refuses the mismatch itself', async () => {
      // release-tags-are-immutable never reads request.digest on a digest push (has(request.tag) is false)
      const other = await manifest('mismatch');
      const r = await send('PUT', sha(a), other);
      expect(r.status).toBe(400);
      expect((await r.json()).errors[0].code).toBe('DIGEST_INVALID');
      const check = await fetch(`${stack.registry.url}/v2/${REPO}/manifests/${sha(other)}`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_TYPE },
      });
      expect(check.status).toBe(404);
    });
  });
});
