import { OciError } from './errors.js';
import { isValidDigest, isValidReference, isValidRepositoryName, type Scope } from './scope.js';

/**
 * What each kind of registry route allows and needs: its methods (a 405 with `Allow` otherwise),
 * the scopes it asks for and the path it forwards, re-serialized from its parts. route.ts parses a
 * request path into these parts; the builders here decide the route once the name is known valid.
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
export type RouteError = OciError;

type RouteErrorCode = 'NAME_INVALID' | 'NAME_UNKNOWN' | 'DIGEST_INVALID' | 'BLOB_UPLOAD_INVALID' | 'UNSUPPORTED';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function err(status: 400 | 404 | 405, code: RouteErrorCode, message: string, allow?: string): RouteError {
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
  return {
    kind,
    method,
    name,
    scopes,
    path: `/v2/${name}/${segment}/`,
    query: '',
    notFound: new OciError(404, code, message),
  };
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

export function catalogRoute(method: string, rawQuery: string): Route | RouteError {
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
  return {
    kind: 'catalog',
    method,
    scopes: [{ type: 'registry', name: 'catalog', actions: ['*'] }],
    path: '/v2/_catalog',
    query: q ? `?${q}` : '',
  };
}

export function tagsRoute(method: string, name: string, query: string): Route | RouteError {
  if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
  return { kind: 'tags', method, name, scopes: [repoScope(name, ['pull'])], path: `/v2/${name}/tags/list`, query };
}

export function manifestRoute(method: string, name: string, reference: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'PUT', 'DELETE'].includes(method))
    return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, PUT, DELETE');
  const scopes = [repoScope(name, actionsFor(method)!)];
  if (!isValidReference(reference))
    return unknownRoute(
      method,
      'manifest',
      name,
      scopes,
      'MANIFEST_UNKNOWN',
      `manifest unknown: ${quoted(reference)} is neither a tag nor a digest`,
    );
  return { kind: 'manifest', method, name, reference, scopes, path: `/v2/${name}/manifests/${reference}`, query };
}

export function uploadStartRoute(method: string, name: string, rawQuery: string, query: string): Route | RouteError {
  if (method !== 'POST') return err(405, 'UNSUPPORTED', 'method not allowed', 'POST');
  const params = new URLSearchParams(rawQuery);
  const mount = params.get('mount');
  const from = params.get('from');
  const scopes = [repoScope(name, ['pull', 'push'])];
  let mountFrom: string | undefined;
  if (params.getAll('mount').length > 1 || params.getAll('from').length > 1)
    return err(400, 'UNSUPPORTED', 'mount and from may appear once each');
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
  return {
    kind: 'upload-start',
    method,
    name,
    scopes,
    path: `/v2/${name}/blobs/uploads/`,
    query: forwarded,
    mountFrom,
  };
}

export function uploadRoute(method: string, name: string, session: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'].includes(method))
    return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, PATCH, PUT, DELETE');
  // Every method on an upload session is part of pushing (cancelling one's own upload is not deleting content).
  const scopes = [repoScope(name, ['pull', 'push'])];
  if (!UPLOAD_ID.test(session))
    return unknownRoute(
      method,
      'upload',
      name,
      scopes,
      'BLOB_UPLOAD_UNKNOWN',
      `blob upload unknown: ${quoted(session)} is not an upload session id`,
    );
  return {
    kind: 'upload',
    method,
    name,
    reference: session,
    scopes,
    path: `/v2/${name}/blobs/uploads/${session}`,
    query,
  };
}

export function blobRoute(method: string, name: string, digest: string, query: string): Route | RouteError {
  if (!['GET', 'HEAD', 'DELETE'].includes(method))
    return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD, DELETE');
  const scopes = [repoScope(name, actionsFor(method)!)];
  // Not digest-shaped: Distribution's router 404s it. A digest-shaped one it cannot use is its own 400 DIGEST_INVALID.
  if (!isValidDigest(digest))
    return unknownRoute(
      method,
      'blob',
      name,
      scopes,
      'BLOB_UNKNOWN',
      `blob unknown: ${quoted(digest)} is not a digest`,
    );
  return { kind: 'blob', method, name, reference: digest, scopes, path: `/v2/${name}/blobs/${digest}`, query };
}

export function referrersRoute(method: string, name: string, digest: string, query: string): Route | RouteError {
  if (!isValidDigest(digest)) return err(400, 'DIGEST_INVALID', 'invalid digest');
  if (method !== 'GET' && method !== 'HEAD') return err(405, 'UNSUPPORTED', 'method not allowed', 'GET, HEAD');
  return {
    kind: 'referrers',
    method,
    name,
    reference: digest,
    scopes: [repoScope(name, ['pull'])],
    path: `/v2/${name}/referrers/${digest}`,
    query,
  };
}
