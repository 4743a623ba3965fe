import { isValidDigest, isValidReference, isValidRepositoryName, type Scope } from './scope.js';

/**
 * Request → the scopes it needs (Distribution `registry/handlers/app.go`), as a pure function.
 * Paths are parsed anchored from the right (a repository may contain `blobs` or `manifests` as a
 * component; a tag may be named `blobs`), and the path forwarded upstream is re-serialized from the
 * parsed route, never the raw string, so what was authorized is exactly what the upstream sees.
 */

export type RouteKind =
  | 'ping'
  | 'catalog'
  | 'tags'
  | 'manifest'
  | 'blob'
  | 'upload-start'
  | 'upload'
  | 'referrers';

export interface Route {
  kind: RouteKind;
  /** Repository name (absent for ping and catalog). */
  name?: string;
  /** Tag, digest or upload session id. */
  reference?: string;
  /** Scopes the request needs; empty for ping (any valid token). */
  scopes: Scope[];
  /** Path to forward upstream (re-serialized). */
  path: string;
  /** Query to forward upstream ('' or starting with '?'). */
  query: string;
  /** Cross-repository mount source, when the request asks for one. */
  mountFrom?: string;
}

export interface RouteError {
  status: 400 | 404 | 405;
  code: 'NAME_INVALID' | 'NAME_UNKNOWN' | 'DIGEST_INVALID' | 'MANIFEST_INVALID' | 'BLOB_UPLOAD_INVALID' | 'UNSUPPORTED';
  message: string;
  allow?: string;
}

export function isRouteError(x: Route | RouteError): x is RouteError {
  return 'status' in x;
}

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** Parameters that start a cross-repository mount; forwarded only on an authorized upload-start. */
const MOUNT_PARAMS = ['mount', 'from'];

/**
 * The query the upstream gets: parsed once (URLSearchParams, `&` only) and re-serialized, so the
 * upstream cannot read a parameter the proxy did not. Go before 1.17 (registry:2.7) also splits on
 * `;`: re-serialized, a `;` is percent-encoded and stays inside its value. `mount`/`from` never pass
 * here (Distribution reads `from` on every route); an authorized mount adds them back itself.
 */
function canonicalQuery(rawQuery: string): string {
  const params = new URLSearchParams(rawQuery);
  for (const p of MOUNT_PARAMS) params.delete(p);
  const q = params.toString();
  return q ? `?${q}` : '';
}
const SAFE_PATH = /^\/[A-Za-z0-9._\-/:%]*$/;

function err(status: RouteError['status'], code: RouteError['code'], message: string, allow?: string): RouteError {
  return { status, code, message, ...(allow ? { allow } : {}) };
}

function repoScope(name: string, actions: string[]): Scope {
  return { type: 'repository', name, actions };
}

/** GET/HEAD → pull; POST/PUT/PATCH → pull,push; DELETE → delete. */
function actionsFor(method: string): string[] | undefined {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return ['pull'];
    case 'POST':
    case 'PUT':
    case 'PATCH':
      return ['pull', 'push'];
    case 'DELETE':
      return ['delete'];
    default:
      return undefined;
  }
}

/**
 * @param rawPath the request path exactly as received (without the query)
 * @param rawQuery the query string exactly as received ('' or without the leading '?')
 */
export function classify(method: string, rawPath: string, rawQuery = ''): Route | RouteError {
  if (rawPath.length > 2048) return err(400, 'NAME_INVALID', 'path too long');
  if (!SAFE_PATH.test(rawPath)) return err(400, 'NAME_INVALID', 'path contains characters no registry path uses');
  // Percent-encoding is never needed by the OCI grammar; only an encoded ':' (digests) is tolerated.
  let path = rawPath;
  if (path.includes('%')) {
    path = path.replace(/%3a/gi, ':');
    if (path.includes('%')) return err(400, 'NAME_INVALID', 'encoded characters are not allowed in registry paths');
  }
  if (path === '/v2' || path === '/v2/') {
    if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
    return { kind: 'ping', scopes: [], path: '/v2/', query: '' };
  }
  if (!path.startsWith('/v2/')) return err(404, 'UNSUPPORTED', 'not a registry API path');
  const rest = path.slice(4);
  if (rest === '_catalog') {
    if (method !== 'GET') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET');
    // Only the pagination parameters, once each: `last` may be an opaque cursor the handler opens.
    const params = new URLSearchParams(rawQuery);
    const kept = new URLSearchParams();
    for (const p of ['n', 'last']) {
      const values = params.getAll(p);
      if (values.length > 1) return err(400, 'UNSUPPORTED', `${p} may appear once`);
      if (values.length === 1) kept.set(p, values[0]!);
    }
    const q = kept.toString();
    return { kind: 'catalog', scopes: [{ type: 'registry', name: 'catalog', actions: ['*'] }], path: '/v2/_catalog', query: q ? `?${q}` : '' };
  }
  const segs = rest.split('/');
  // Empty segments (`//`) and dot segments never reach the name parser.
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '.' || s === '..') return err(400, 'NAME_INVALID', 'dot segments are not allowed');
    if (s === '' && i !== segs.length - 1) return err(400, 'NAME_INVALID', 'empty path segment');
  }
  const n = segs.length;
  const last = segs[n - 1]!;
  const prev = n >= 2 ? segs[n - 2]! : '';
  const prev2 = n >= 3 ? segs[n - 3]! : '';
  const nameOf = (count: number): string | RouteError => {
    const name = segs.slice(0, n - count).join('/');
    if (!isValidRepositoryName(name)) return err(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
    return name;
  };
  const query = canonicalQuery(rawQuery);

  if (prev === 'tags' && last === 'list') {
    const name = nameOf(2);
    if (typeof name !== 'string') return name;
    if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
    return { kind: 'tags', name, scopes: [repoScope(name, ['pull'])], path: `/v2/${name}/tags/list`, query };
  }
  if (prev === 'manifests') {
    const name = nameOf(2);
    if (typeof name !== 'string') return name;
    if (!isValidReference(last)) return err(400, 'MANIFEST_INVALID', 'invalid tag or digest');
    if (!['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, PUT, DELETE');
    return { kind: 'manifest', name, reference: last, scopes: [repoScope(name, actionsFor(method)!)], path: `/v2/${name}/manifests/${last}`, query };
  }
  if (last === '' && prev === 'uploads' && prev2 === 'blobs') {
    const name = nameOf(3);
    if (typeof name !== 'string') return name;
    if (method !== 'POST') return err(405, 'UNSUPPORTED', 'method not allowed', 'POST');
    const params = new URLSearchParams(rawQuery);
    const mount = params.get('mount');
    const from = params.get('from');
    const scopes = [repoScope(name, ['pull', 'push'])];
    let mountFrom: string | undefined;
    if (params.getAll('mount').length > 1 || params.getAll('from').length > 1) return err(400, 'UNSUPPORTED', 'mount and from may appear once each');
    if (mount !== null || from !== null) {
      if (mount === null || !isValidDigest(mount)) return err(400, 'DIGEST_INVALID', 'mount needs a valid digest');
      if (from === null || !isValidRepositoryName(from)) return err(400, 'NAME_INVALID', 'mount needs a valid `from` repository');
      mountFrom = from;
      if (from !== name) scopes.push(repoScope(from, ['pull']));
    }
    // With a mount, forward exactly the two parameters that were authorized, re-encoded: the
    // upstream must not read a different `from` out of duplicate or oddly encoded parameters.
    const forwarded = mountFrom !== undefined ? `?${new URLSearchParams({ mount: mount!, from: mountFrom })}` : query;
    return { kind: 'upload-start', name, scopes, path: `/v2/${name}/blobs/uploads/`, query: forwarded, mountFrom };
  }
  if (prev === 'uploads' && prev2 === 'blobs') {
    const name = nameOf(3);
    if (typeof name !== 'string') return name;
    if (!UPLOAD_ID.test(last)) return err(400, 'BLOB_UPLOAD_INVALID', 'invalid upload session id');
    if (!['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, PATCH, PUT, DELETE');
    // Cancelling one's own upload session is part of pushing, not deleting content.
    const actions = method === 'DELETE' ? ['pull', 'push'] : method === 'GET' || method === 'HEAD' ? ['pull', 'push'] : actionsFor(method)!;
    return { kind: 'upload', name, reference: last, scopes: [repoScope(name, actions)], path: `/v2/${name}/blobs/uploads/${last}`, query };
  }
  if (prev === 'blobs') {
    const name = nameOf(2);
    if (typeof name !== 'string') return name;
    if (!isValidDigest(last)) return err(400, 'DIGEST_INVALID', 'invalid digest');
    if (!['GET', 'HEAD', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, DELETE');
    return { kind: 'blob', name, reference: last, scopes: [repoScope(name, actionsFor(method)!)], path: `/v2/${name}/blobs/${last}`, query };
  }
  if (prev === 'referrers') {
    const name = nameOf(2);
    if (typeof name !== 'string') return name;
    if (!isValidDigest(last)) return err(400, 'DIGEST_INVALID', 'invalid digest');
    if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
    return { kind: 'referrers', name, reference: last, scopes: [repoScope(name, ['pull'])], path: `/v2/${name}/referrers/${last}`, query };
  }
  return err(404, 'UNSUPPORTED', 'unknown registry API route');
}

/** What the handler knows about a request body before reading it. */
export interface BodyFacts {
  /** Every Content-Type header value (a client may send several). */
  contentTypes: string[];
  /** A non-zero Content-Length or any Transfer-Encoding. */
  hasBody: boolean;
}

/** Form media types, which Go's `FormValue` (and so Distribution) parses out of request bodies. */
const FORM_TYPE = /x-www-form-urlencoded|form-data/i;

/**
 * Refuses bodies that could carry parameters past authorization. Distribution reads `mount`,
 * `from`, `digest` and `_state` with Go's `FormValue`, which also parses form bodies — body values
 * winning over the query — so the proxy, which authorizes from the query, must never forward form
 * content: no registry API call uses it. A mount takes no body at all.
 */
export function refuseBody(route: Route, body: BodyFacts): RouteError | undefined {
  if (body.contentTypes.some((t) => FORM_TYPE.test(t))) return err(400, 'UNSUPPORTED', 'form bodies are not part of the registry API');
  if (route.mountFrom !== undefined && body.hasBody) return err(400, 'BLOB_UPLOAD_INVALID', 'a cross-repository mount takes no request body');
  return undefined;
}

/** The same route without the cross-repository mount (when `from` may not be pulled). */
export function withoutMount(route: Route): Route {
  const params = new URLSearchParams(route.query.replace(/^\?/, ''));
  params.delete('mount');
  params.delete('from');
  const q = params.toString();
  return { ...route, scopes: route.scopes.filter((s) => s.name === route.name), query: q ? `?${q}` : '', mountFrom: undefined };
}
