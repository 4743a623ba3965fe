import { describe, expect, it } from 'vitest';
import { refuseBody } from '../../../src/oci/request-body.js';
import { classify, isRouteError, withoutMount, type Route } from '../../../src/oci/route.js';
import { bearerChallenge } from '../../../src/oci/challenge.js';
import { formatScope } from '../../../src/oci/scope.js';

const D = `sha256:${'a'.repeat(64)}`;

function ok(method: string, path: string, query = ''): Route {
  const r = classify(method, path, query);
  if (isRouteError(r)) throw new Error(`${method} ${path}: ${r.status} ${r.message}`);
  return r;
}

function scopes(method: string, path: string, query = ''): string[] {
  return ok(method, path, query).scopes.map(formatScope);
}

describe('route → scopes', () => {
  it.each([
    ['GET', '/v2/', []],
    ['HEAD', '/v2', []],
    ['GET', '/v2/_catalog', ['registry:catalog:*']],
    ['GET', '/v2/a/b/tags/list', ['repository:a/b:pull']],
    ['GET', '/v2/a/b/manifests/latest', ['repository:a/b:pull']],
    ['HEAD', `/v2/a/b/manifests/${D}`, ['repository:a/b:pull']],
    ['PUT', '/v2/a/b/manifests/v1', ['repository:a/b:pull,push']],
    ['DELETE', `/v2/a/b/manifests/${D}`, ['repository:a/b:delete']],
    ['GET', `/v2/a/b/blobs/${D}`, ['repository:a/b:pull']],
    ['HEAD', `/v2/a/b/blobs/${D}`, ['repository:a/b:pull']],
    ['DELETE', `/v2/a/b/blobs/${D}`, ['repository:a/b:delete']],
    ['POST', '/v2/a/b/blobs/uploads/', ['repository:a/b:pull,push']],
    ['PATCH', '/v2/a/b/blobs/uploads/0d6e0c63-6d93-4e5a-8a8d-1b2c3d4e5f60', ['repository:a/b:pull,push']],
    ['PUT', '/v2/a/b/blobs/uploads/abc_DEF-123', ['repository:a/b:pull,push']],
    ['GET', '/v2/a/b/blobs/uploads/abc', ['repository:a/b:pull,push']],
    ['DELETE', '/v2/a/b/blobs/uploads/abc', ['repository:a/b:pull,push']],
    ['GET', `/v2/a/b/referrers/${D}`, ['repository:a/b:pull']],
  ])('%s %s', (method, path, expected) => {
    expect(scopes(method, path)).toEqual(expected);
  });

  it('parses from the right: repositories named blobs/manifests, tags named blobs', () => {
    expect(ok('GET', '/v2/a/blobs/manifests/blobs')).toMatchObject({
      kind: 'manifest',
      name: 'a/blobs',
      reference: 'blobs',
    });
    expect(ok('GET', '/v2/manifests/manifests/manifests')).toMatchObject({
      kind: 'manifest',
      name: 'manifests',
      reference: 'manifests',
    });
    expect(ok('GET', '/v2/manifests/manifests/manifests/manifests')).toMatchObject({
      kind: 'manifest',
      name: 'manifests/manifests',
      reference: 'manifests',
    });
    expect(ok('GET', `/v2/blobs/blobs/${D}`)).toMatchObject({ kind: 'blob', name: 'blobs' });
    expect(ok('GET', `/v2/x/blobs/uploads/blobs/${D}`)).toMatchObject({ kind: 'blob', name: 'x/blobs/uploads' });
    expect(ok('POST', '/v2/tags/list/blobs/uploads/')).toMatchObject({ kind: 'upload-start', name: 'tags/list' });
    expect(ok('GET', '/v2/a/manifests/tags/list')).toMatchObject({ kind: 'tags', name: 'a/manifests' });
  });

  it('re-serializes the forwarded path from the parsed route', () => {
    expect(ok('GET', `/v2/a/b/blobs/sha256%3A${'a'.repeat(64)}`).path).toBe(`/v2/a/b/blobs/${D}`);
    expect(ok('GET', '/v2/a/b/tags/list', 'n=10&last=x')).toMatchObject({
      path: '/v2/a/b/tags/list',
      query: '?n=10&last=x',
    });
  });

  it('needs pull on `from` for a cross-repository mount, and can drop the mount', () => {
    const r = ok('POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=c/d`);
    expect(r.scopes.map(formatScope)).toEqual(['repository:a/b:pull,push', 'repository:c/d:pull']);
    expect(r.mountFrom).toBe('c/d');
    const plain = withoutMount(r);
    expect(plain.scopes.map(formatScope)).toEqual(['repository:a/b:pull,push']);
    expect(plain.query).toBe('');
    expect(isRouteError(classify('POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=../x`))).toBe(true);
    expect(isRouteError(classify('POST', '/v2/a/b/blobs/uploads/', 'mount=nope&from=c'))).toBe(true);
  });

  it("starts a plain upload for a lone mount or from (the spec's 202 of a registry that cannot mount)", () => {
    for (const query of [`mount=${D}`, 'from=c/d', 'from=../x', 'mount=nope']) {
      const r = ok('POST', '/v2/a/b/blobs/uploads/', query);
      expect(r.mountFrom, query).toBeUndefined();
      expect(r.scopes.map(formatScope), query).toEqual(['repository:a/b:pull,push']);
    }
  });

  // What the upstream gets as the query: re-serialized from what the proxy parsed, `;` encoded (a
  // separator for Go < 1.17), mount/from only on an authorized upload-start.
  it.each([
    ['GET', '/v2/a/b/tags/list', 'n=10&last=x', '?n=10&last=x'],
    ['GET', '/v2/a/b/tags/list', 'n=1;last=x', '?n=1%3Blast%3Dx'],
    ['GET', '/v2/_catalog', 'n=5&last=a%2Fb', '?n=5&last=a%2Fb'],
    ['GET', '/v2/_catalog', 'last=a/b&n=5&x=1', '?n=5&last=a%2Fb'],
    ['GET', '/v2/_catalog', 'n=1;last=a', '?n=1%3Blast%3Da'],
    ['GET', '/v2/_catalog', '', ''],
    ['POST', '/v2/a/b/blobs/uploads/', '', ''],
    ['POST', '/v2/a/b/blobs/uploads/', `digest=${D}`, `?digest=${encodeURIComponent(D)}`],
    ['POST', '/v2/a/b/blobs/uploads/', `x=1;mount=${D};from=c/d`, `?x=${encodeURIComponent(`1;mount=${D};from=c/d`)}`],
    [
      'POST',
      '/v2/a/b/blobs/uploads/',
      `;mount=${D};from=c/d`,
      `?${encodeURIComponent(`;mount`)}=${encodeURIComponent(`${D};from=c/d`)}`,
    ],
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=c/d&x=1`, `?mount=${encodeURIComponent(D)}&from=c%2Fd`],
    ['PATCH', '/v2/a/b/blobs/uploads/u1', '_state=abc%3D%3D', '?_state=abc%3D%3D'],
    [
      'PUT',
      '/v2/a/b/blobs/uploads/u1',
      `_state=abc-_%3D&digest=${D}`,
      `?_state=abc-_%3D&digest=${encodeURIComponent(D)}`,
    ],
    [
      'PUT',
      '/v2/a/b/blobs/uploads/u1',
      `_state=s&digest=${D}&mount=${D}&from=c`,
      `?_state=s&digest=${encodeURIComponent(D)}`,
    ],
    ['PUT', '/v2/a/b/blobs/uploads/u1', `_state=s;digest=${D}`, `?_state=${encodeURIComponent(`s;digest=${D}`)}`],
    ['GET', '/v2/a/b/manifests/v1', 'from=c/d', ''],
    // a lone mount or from is no mount: a plain upload start, the parameter not forwarded
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}`, ''],
    ['POST', '/v2/a/b/blobs/uploads/', 'from=c/d', ''],
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}&x=1`, '?x=1'],
    ['POST', '/v2/a/b/blobs/uploads/', 'mount=nope', ''],
    ['GET', `/v2/a/b/blobs/${D}`, 'a=%zz&b=+c', '?a=%25zz&b=+c'],
  ])('%s %s?%s forwards %s', (method, path, query, forwarded) => {
    const r = ok(method, path, query);
    expect(r.query).toBe(forwarded);
    // `;` never reaches the upstream unencoded
    expect(r.query).not.toContain(';');
  });

  it('reads no mount out of a `;`-separated query', () => {
    const r = ok('POST', '/v2/a/b/blobs/uploads/', `x=1;mount=${D};from=c/d`);
    expect(r.mountFrom).toBeUndefined();
    expect(r.scopes.map(formatScope)).toEqual(['repository:a/b:pull,push']);
  });

  it('refuses duplicated catalog pagination parameters', () => {
    expect(classify('GET', '/v2/_catalog', 'last=a&last=b')).toMatchObject({ status: 400 });
    expect(classify('GET', '/v2/_catalog', 'n=1&n=2')).toMatchObject({ status: 400 });
  });

  it.each([
    // [method, path, query, content types, has body, refused status]
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=c`, [], false, undefined],
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=c`, [], true, 400],
    ['POST', '/v2/a/b/blobs/uploads/', `mount=${D}&from=c`, ['application/octet-stream'], true, 400],
    ['POST', '/v2/a/b/blobs/uploads/', '', [], true, undefined],
    ['POST', '/v2/a/b/blobs/uploads/', '', ['application/octet-stream'], true, undefined],
    ['POST', '/v2/a/b/blobs/uploads/', '', ['application/x-www-form-urlencoded'], true, 400],
    ['POST', '/v2/a/b/blobs/uploads/', '', ['Application/X-WWW-Form-Urlencoded; charset=utf-8'], true, 400],
    ['POST', '/v2/a/b/blobs/uploads/', '', ['multipart/form-data; boundary=x'], true, 400],
    [
      'POST',
      '/v2/a/b/blobs/uploads/',
      '',
      ['application/octet-stream', 'application/x-www-form-urlencoded'],
      true,
      400,
    ],
    ['POST', '/v2/a/b/blobs/uploads/', '', ['application/x-www-form-urlencoded'], false, 400],
    ['PATCH', '/v2/a/b/blobs/uploads/u1', '_state=s', ['application/octet-stream'], true, undefined],
    ['PATCH', '/v2/a/b/blobs/uploads/u1', '_state=s', ['application/x-www-form-urlencoded'], true, 400],
    ['PUT', '/v2/a/b/blobs/uploads/u1', `_state=s&digest=${D}`, ['multipart/form-data; boundary=x'], true, 400],
    ['PUT', '/v2/a/b/manifests/v1', '', ['application/vnd.oci.image.manifest.v1+json'], true, undefined],
    ['PUT', '/v2/a/b/manifests/v1', '', ['application/x-www-form-urlencoded'], true, 400],
  ] as const)('%s %s?%s with %j, body %s → %s', (method, path, query, contentTypes, hasBody, status) => {
    const refused = refuseBody(ok(method, path, query), { contentTypes: [...contentTypes], hasBody });
    expect(refused?.status).toBe(status);
  });

  it.each([
    ['/v2/a/../b/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a/./b/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a/%2e%2e/b/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a%2fb/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a%2Fb/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a//b/manifests/x', 400, 'NAME_INVALID'],
    ['//v2/a/manifests/x', 404, 'UNSUPPORTED'], // not under /v2/ at all
    ['/v2/a\\b/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/A/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a/manifests/../../../etc/passwd', 400, 'NAME_INVALID'],
    ['/v2/a\u0000/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/ａ/manifests/x', 400, 'NAME_INVALID'],
    ['/v2/a/manifests/x%00', 400, 'NAME_INVALID'],
    [`/v2/${'a/'.repeat(1500)}manifests/x`, 400, 'NAME_INVALID'],
    ['/v2/a/blobs/uploads/../x', 400, 'NAME_INVALID'],
  ] as const)('rejects the path trick %s: %s %s', (path, status, code) => {
    const r = classify('GET', path);
    expect(isRouteError(r) && [r.status, r.code]).toEqual([status, code]);
  });

  // Distribution's router only matches a tag or digest (a session id for uploads) there, so it
  // answers 404; the proxy authorizes such a request like any other of its kind, then answers the
  // kind's 404 itself, and forwards nothing: the reference is not even in the path.
  it.each([
    ['GET', '/v2/a/b/manifests/.INVALID_MANIFEST_NAME', 'manifest', 'repository:a/b:pull', 'MANIFEST_UNKNOWN'],
    ['HEAD', '/v2/a/b/manifests/-bad', 'manifest', 'repository:a/b:pull', 'MANIFEST_UNKNOWN'],
    ['PUT', '/v2/a/b/manifests/-bad', 'manifest', 'repository:a/b:pull,push', 'MANIFEST_UNKNOWN'],
    ['DELETE', '/v2/a/b/manifests/Sha256:x', 'manifest', 'repository:a/b:delete', 'MANIFEST_UNKNOWN'],
    ['GET', '/v2/a/b/manifests/', 'manifest', 'repository:a/b:pull', 'MANIFEST_UNKNOWN'],
    ['GET', `/v2/a/b/manifests/${'t'.repeat(129)}`, 'manifest', 'repository:a/b:pull', 'MANIFEST_UNKNOWN'],
    ['GET', '/v2/a/b/blobs/not-a-digest', 'blob', 'repository:a/b:pull', 'BLOB_UNKNOWN'],
    ['DELETE', '/v2/a/b/blobs/Sha256:abc', 'blob', 'repository:a/b:delete', 'BLOB_UNKNOWN'],
    ['PATCH', '/v2/a/b/blobs/uploads/a.b', 'upload', 'repository:a/b:pull,push', 'BLOB_UPLOAD_UNKNOWN'],
  ])('%s %s is a %s route needing %s, answered 404 %s once authorized', (method, path, kind, scope, code) => {
    const r = ok(method, path, 'x=1');
    expect(r).toMatchObject({ kind, name: 'a/b', query: '' });
    expect(r.reference).toBeUndefined();
    expect(r.scopes.map(formatScope)).toEqual([scope]);
    expect(r.notFound).toMatchObject({ status: 404, code });
    expect(r.path).toMatch(/\/$/);
  });

  it('routes a valid reference without a notFound answer', () => {
    expect(ok('GET', '/v2/a/b/manifests/latest').notFound).toBeUndefined();
    expect(ok('GET', `/v2/a/b/blobs/${D}`).notFound).toBeUndefined();
    // digest-shaped but unusable: the upstream's own 400 DIGEST_INVALID answers, as from Distribution
    expect(ok('GET', '/v2/a/b/blobs/sha256:xyz').notFound).toBeUndefined();
  });

  it('answers unknown routes 404 and wrong methods 405', () => {
    expect(classify('POST', '/v2/a/manifests/-bad')).toMatchObject({ status: 405 });
    expect(classify('PUT', '/v2/a/blobs/not-a-digest')).toMatchObject({ status: 405 });
    expect(classify('GET', '/v2/a/unknown/thing')).toMatchObject({ status: 404 });
    expect(classify('GET', '/v1/_ping')).toMatchObject({ status: 404 });
    expect(classify('GET', '/v2/a')).toMatchObject({ status: 404 });
    expect(classify('POST', '/v2/a/manifests/x')).toMatchObject({ status: 405 });
    expect(classify('PUT', `/v2/a/blobs/${D}`)).toMatchObject({ status: 405 });
    expect(classify('DELETE', '/v2/_catalog')).toMatchObject({ status: 405 });
    expect(classify('OPTIONS', '/v2/')).toMatchObject({ status: 405 });
  });
});

describe('route → method and reference', () => {
  it('carries the method and the reference (tag, digest or session) the guards read', () => {
    expect(ok('HEAD', '/v2/a/b/manifests/latest')).toMatchObject({
      kind: 'manifest',
      method: 'HEAD',
      reference: 'latest',
    });
    expect(ok('GET', `/v2/a/b/blobs/${D}`)).toMatchObject({ method: 'GET', reference: D });
    expect(ok('PATCH', '/v2/a/b/blobs/uploads/abc')).toMatchObject({ method: 'PATCH', reference: 'abc' });
    expect(ok('GET', `/v2/a/b/referrers/${D}`)).toMatchObject({ method: 'GET', reference: D });
    expect(ok('POST', '/v2/a/b/blobs/uploads/')).toMatchObject({ method: 'POST' });
    expect(ok('GET', '/v2/')).toMatchObject({ kind: 'ping', method: 'GET' });
    expect(ok('DELETE', '/v2/a/b/manifests/-bad')).toMatchObject({ method: 'DELETE', notFound: { status: 404 } });
  });
});

describe('challenge', () => {
  it('formats like Distribution', () => {
    const s = [ok('PUT', '/v2/a/b/manifests/x').scopes[0]!, { type: 'repository', name: 'c', actions: ['pull'] }];
    expect(bearerChallenge('https://r/token', 'r', [])).toBe('Bearer realm="https://r/token",service="r"');
    expect(bearerChallenge('https://r/token', 'r', s, 'insufficient_scope')).toBe(
      'Bearer realm="https://r/token",service="r",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"',
    );
  });
});
