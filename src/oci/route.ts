import { OciError } from './errors.js';
import { isValidRepositoryName } from './scope.js';
import {
  blobRoute,
  catalogRoute,
  err,
  manifestRoute,
  referrersRoute,
  tagsRoute,
  uploadRoute,
  uploadStartRoute,
  type Route,
  type RouteError,
} from './route-kinds.js';

/**
 * Request → the scopes it needs (Distribution `registry/handlers/app.go`), as a pure function.
 * Paths are parsed anchored from the right (a repository may contain `blobs` or `manifests` as a
 * component; a tag may be named `blobs`), and the path forwarded upstream is re-serialized from the
 * parsed route, never the raw string, so what was authorized is exactly what the upstream sees.
 */

export type { Route, RouteKind } from './route-kinds.js';

export function isRouteError(x: Route | RouteError): x is RouteError {
  return x instanceof OciError;
}

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
    if (!isValidRepositoryName(name))
      return err(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
    return build(name);
  };
  const query = canonicalQuery(rawQuery);
  if (prev === 'tags' && last === 'list') return named(2, (name) => tagsRoute(method, name, query));
  if (prev === 'manifests') return named(2, (name) => manifestRoute(method, name, last, query));
  if (last === '' && prev === 'uploads' && prev2 === 'blobs')
    return named(3, (name) => uploadStartRoute(method, name, rawQuery, query));
  if (prev === 'uploads' && prev2 === 'blobs') return named(3, (name) => uploadRoute(method, name, last, query));
  if (prev === 'blobs') return named(2, (name) => blobRoute(method, name, last, query));
  if (prev === 'referrers') return named(2, (name) => referrersRoute(method, name, last, query));
  return err(404, 'UNSUPPORTED', 'unknown registry API route');
}

/** The same route without the cross-repository mount (when `from` may not be pulled). */
export function withoutMount(route: Route): Route {
  const params = new URLSearchParams(route.query.replace(/^\?/, ''));
  params.delete('mount');
  params.delete('from');
  const q = params.toString();
  return {
    ...route,
    scopes: route.scopes.filter((s) => s.name === route.name),
    query: q ? `?${q}` : '',
    mountFrom: undefined,
  };
}
