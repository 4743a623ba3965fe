import { OciError } from './errors.js';
import { isValidDigest, isValidReference, isValidRepositoryName, type Scope } from './scope.js';

/**
 * Request → the scopes it needs (Distribution `registry/handlers/app.go`), as a pure function.
 * Paths are parsed anchored from the right (a repository may contain `blobs` or `manifests` as a
 * component; a tag may be named `blobs`), and the path forwarded upstream is re-serialized from the
 * parsed route, never the raw string, so what was authorized is exactly what the upstream sees.
 */

export type RouteKind = 'ping' | 'catalog' | 'tags' | 'manifest' | 'blob' | 'upload-start' | 'upload' | 'referrers';

export interface Route {
  kind: RouteKind;
  /** The request's method: guards and the forwarder read it from the route, not the request. */
  method: string;
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
  /**
   * The answer once authorized, instead of forwarding: the reference is no tag, digest or session
   * id, so it names nothing the upstream could hold (Distribution's router 404s it). Authorized
   * first, so an unauthenticated client still gets the challenge; never sent upstream.
   */
  notFound?: OciError;
}

/** Why a request is no registry API call the proxy forwards: an OciError (with `Allow` on a 405). */
type RouteError = OciError;

export function isRouteError(x: Route | RouteError): x is RouteError {
  return x instanceof OciError;
}

type RouteErrorCode = 'NAME_INVALID' | 'NAME_UNKNOWN' | 'DIGEST_INVALID' | 'BLOB_UPLOAD_INVALID' | 'UNSUPPORTED';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** Parameters that start a cross-repository mount; forwarded only on an authorized upload-start. */
const MOUNT_PARAMS = ['mount', 'from'];
/** containerd's mirror hint (`?ns=docker.io`): read by the proxy to pick the upstream, never forwarded. */
const PROXY_PARAMS = ['ns'];

/**
 * The query the upstream gets: parsed once (URLSearchParams, `&` only) and re-serialized, so the
 * upstream cannot read a parameter the proxy did not. Go before 1.17 (registry:2.7) also splits on
 * `;`: re-serialized, a `;` is percent-encoded and stays inside its value. `mount`/`from` never pass
 * here (Distribution reads `from` on every route); an authorized mount adds them back itself.
 */
function canonicalQuery(rawQuery: string): string {
  // Most requests (every manifest HEAD) have none: no parser for an empty query.
  if (rawQuery === '') return '';
  const params = new URLSearchParams(rawQuery);
  for (const p of [...MOUNT_PARAMS, ...PROXY_PARAMS]) params.delete(p);
  const q = params.toString();
  return q ? `?${q}` : '';
}
const SAFE_PATH = /^\/[A-Za-z0-9._\-/:%]*$/;

function err(status: 400 | 404 | 405, code: RouteErrorCode, message: string, allow?: string): RouteError {
  return new OciError(status, code, message, { headers: allow ? { Allow: allow } : {} });
}

/**
 * A route whose reference names nothing: authorized like any other of its kind, then answered 404
 * with the kind's UNKNOWN code. Its path ends before the reference, which is never forwarded.
 */
function unknownRoute(
  method: string,
  kind: 'manifest' | 'blob' | 'upload',
  name: string,
  scopes: Scope[],
  code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'BLOB_UPLOAD_UNKNOWN',
  message: string,
): Route {
  const segment = kind === 'manifest' ? 'manifests' : kind === 'blob' ? 'blobs' : 'blobs/uploads';
  return { kind, method, name, scopes, path: `/v2/${name}/${segment}/`, query: '', notFound: new OciError(404, code, message) };
}

const quoted = (reference: string) => JSON.stringify(reference.slice(0, 300));

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
  const path = registryPath(rawPath);
  if (typeof path !== 'string') return path;
  if (path === '/v2' || path === '/v2/') {
    if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
    return { kind: 'ping', method, scopes: [], path: '/v2/', query: '' };
  }
  if (!path.startsWith('/v2/')) return err(404, 'UNSUPPORTED', 'not a registry API path');
  const rest = path.slice(4);
  if (rest === '_catalog') return catalogRoute(method, rawQuery);
  return repositoryRoute(method, rest, rawQuery);
}

/** The path with its one tolerated encoding decoded, or why it is no registry path. */
function registryPath(rawPath: string): string | RouteError {
  if (rawPath.length > 2048) return err(400, 'NAME_INVALID', 'path too long');
  if (!SAFE_PATH.test(rawPath)) return err(400, 'NAME_INVALID', 'path contains characters no registry path uses');
  // Percent-encoding is never needed by the OCI grammar; only an encoded ':' (digests) is tolerated.
  if (!rawPath.includes('%')) return rawPath;
  const path = rawPath.replace(/%3a/gi, ':');
  if (path.includes('%')) return err(400, 'NAME_INVALID', 'encoded characters are not allowed in registry paths');
  return path;
}

function catalogRoute(method: string, rawQuery: string): Route | RouteError {
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
  return { kind: 'catalog', method, scopes: [{ type: 'registry', name: 'catalog', actions: ['*'] }], path: '/v2/_catalog', query: q ? `?${q}` : '' };
}

/** `<name>/<kind>[/<kind>]/<last>`, parsed from the right: the name is what precedes the route's own segments. */
function repositoryRoute(method: string, rest: string, rawQuery: string): Route | RouteError {
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
  /** The route `build` makes for the name before the last `count` segments, once that name is valid. */
  const named = (count: number, build: (name: string) => Route | RouteError): Route | RouteError => {
    const name = segs.slice(0, n - count).join('/');
    if (!isValidRepositoryName(name)) return err(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
    return build(name);
  };
  const query = canonicalQuery(rawQuery);
  if (prev === 'tags' && last === 'list') return named(2, (name) => tagsRoute(method, name, query));
  if (prev === 'manifests') return named(2, (name) => manifestRoute(method, name, last, query));
  if (last === '' && prev === 'uploads' && prev2 === 'blobs') return named(3, (name) => uploadStartRoute(method, name, rawQuery, query));
  if (prev === 'uploads' && prev2 === 'blobs') return named(3, (name) => uploadRoute(method, name, last, query));
  if (prev === 'blobs') return named(2, (name) => blobRoute(method, name, last, query));
  if (prev === 'referrers') return named(2, (name) => referrersRoute(method, name, last, query));
  return err(404, 'UNSUPPORTED', 'unknown registry API route');
}

function tagsRoute(method: string, name: string, query: string): Route | RouteError {
  if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
  return { kind: 'tags', method, name, scopes: [repoScope(name, ['pull'])], path: `/v2/${name}/tags/list`, query };
}

function manifestRoute(method: string, name: string, reference: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, PUT, DELETE');
  const scopes = [repoScope(name, actionsFor(method)!)];
  if (!isValidReference(reference))
    return unknownRoute(method, 'manifest', name, scopes, 'MANIFEST_UNKNOWN', `manifest unknown: ${quoted(reference)} is neither a tag nor a digest`);
  return { kind: 'manifest', method, name, reference, scopes, path: `/v2/${name}/manifests/${reference}`, query };
}

function uploadStartRoute(method: string, name: string, rawQuery: string, query: string): Route | RouteError {
  if (method !== 'POST') return err(405, 'UNSUPPORTED', 'method not allowed', 'POST');
  const params = new URLSearchParams(rawQuery);
  const mount = params.get('mount');
  const from = params.get('from');
  const scopes = [repoScope(name, ['pull', 'push'])];
  let mountFrom: string | undefined;
  if (params.getAll('mount').length > 1 || params.getAll('from').length > 1) return err(400, 'UNSUPPORTED', 'mount and from may appear once each');
  // A mount needs both. A lone `mount` or `from` starts a plain upload, as a registry that cannot
  // mount does (the spec's 202; Distribution ignores it), and is not forwarded.
  if (mount !== null && from !== null) {
    if (!isValidDigest(mount)) return err(400, 'DIGEST_INVALID', 'mount needs a valid digest');
    if (!isValidRepositoryName(from)) return err(400, 'NAME_INVALID', 'mount needs a valid `from` repository');
    mountFrom = from;
    if (from !== name) scopes.push(repoScope(from, ['pull']));
  }
  // With a mount, forward exactly the two parameters that were authorized, re-encoded: the
  // upstream must not read a different `from` out of duplicate or oddly encoded parameters.
  const forwarded = mountFrom !== undefined ? `?${new URLSearchParams({ mount: mount!, from: mountFrom })}` : query;
  return { kind: 'upload-start', method, name, scopes, path: `/v2/${name}/blobs/uploads/`, query: forwarded, mountFrom };
}

function uploadRoute(method: string, name: string, session: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, PATCH, PUT, DELETE');
  // Every method on an upload session is part of pushing (cancelling one's own upload is not deleting content).
  const scopes = [repoScope(name, ['pull', 'push'])];
  if (!UPLOAD_ID.test(session))
    return unknownRoute(method, 'upload', name, scopes, 'BLOB_UPLOAD_UNKNOWN', `blob upload unknown: ${quoted(session)} is not an upload session id`);
  return { kind: 'upload', method, name, reference: session, scopes, path: `/v2/${name}/blobs/uploads/${session}`, query };
}

function blobRoute(method: string, name: string, digest: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'DELETE'].includes(method)) return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, DELETE');
  const scopes = [repoScope(name, actionsFor(method)!)];
  // Not digest-shaped: Distribution's router 404s it. A digest-shaped one it cannot use is its own 400 DIGEST_INVALID.
  if (!isValidDigest(digest)) return unknownRoute(method, 'blob', name, scopes, 'BLOB_UNKNOWN', `blob unknown: ${quoted(digest)} is not a digest`);
  return { kind: 'blob', method, name, reference: digest, scopes, path: `/v2/${name}/blobs/${digest}`, query };
}

function referrersRoute(method: string, name: string, digest: string, query: string): Route | RouteError {
  if (!isValidDigest(digest)) return err(400, 'DIGEST_INVALID', 'invalid digest');
  if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
  return { kind: 'referrers', method, name, reference: digest, scopes: [repoScope(name, ['pull'])], path: `/v2/${name}/referrers/${digest}`, query };
}

/** The same route without the cross-repository mount (when `from` may not be pulled). */
export function withoutMount(route: Route): Route {
  const params = new URLSearchParams(route.query.replace(/^\?/, ''));
  params.delete('mount');
  params.delete('from');
  const q = params.toString();
  return { ...route, scopes: route.scopes.filter((s) => s.name === route.name), query: q ? `?${q}` : '', mountFrom: undefined };
}
