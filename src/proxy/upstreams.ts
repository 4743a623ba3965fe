import { Transform } from 'node:stream';
import type { Config } from '../config/types.js';
import { canonicalRegistry, canonicalRepository, registryOf, upstreamFor } from '../config/upstreams.js';
import type { Logger } from '../log.js';
import { OciError } from '../oci/errors.js';
import { withoutMount, type Route } from '../oci/route.js';
import { isValidRepositoryName } from '../oci/scope.js';
import { createForwarder, type Forwarder } from './forward.js';
import type { Upstream } from '../upstream/upstream.js';

/**
 * Several upstreams behind one proxy: each an Upstream (upstream/upstream.ts: credentials, pools)
 * with its forwarder, chosen by the repository name's prefix, which is removed on the way up and
 * added back to Location and Link.
 */

export type Target = Upstream & { forwarder: Forwarder };

export function createTargets(
  upstreams: readonly Upstream[],
  config: Config,
  logger: Logger,
  draining?: () => boolean,
): Target[] {
  return upstreams.map((u) => ({
    ...u,
    forwarder: createForwarder({ ...config, upstream: u.config }, logger, draining, u.agent),
  }));
}

/** What routing reads of an upstream. */
type Routed = { prefix: string; url: string; registry?: string };

/**
 * The canonical form of a client's repository name among these targets (config/upstreams.ts). Pure.
 * Built once per target list (every request used to copy the list and parse each upstream's URL
 * twice): whether a target renames is asked of canonicalRepository itself, once, with a one-segment
 * probe under its own prefix (exactly its Docker Hub test); a name routed to a target that renames
 * goes through canonicalRepository as before, every other name is its own canonical form.
 */
function canonicalAmong(targets: readonly Routed[], key: object = targets): (name: string) => string {
  const cached = canonicalCache.get(key);
  if (cached) return cached;
  const renaming = new Set(targets.filter((u) => canonicalRepository([u], `${u.prefix}x`) !== `${u.prefix}x`));
  const canonical =
    renaming.size === 0
      ? (name: string) => name
      : (name: string) => {
          const u = upstreamFor(targets, name);
          return u && renaming.has(u) ? canonicalRepository([u], name) : name;
        };
  canonicalCache.set(key, canonical);
  return canonical;
}
/** By target list, or by target for one alone; a target list lives as long as its proxy handler. */
const canonicalCache = new WeakMap<object, (name: string) => string>();

/** The upstream's name for a client's: canonical (on Docker Hub a single segment is `library/…`), the prefix removed. Pure. */
export function upstreamName(target: Routed, clientName: string): string {
  return canonicalAmong([target], target)(clientName).slice(target.prefix.length);
}

/**
 * The route under the canonical names of its repository and mount source (`hub/nginx` →
 * `hub/library/nginx`), before anything is authorized: policy, the token's `access`, the challenge
 * and the denial all see the one name the upstream serves, whichever spelling the client used.
 * A name too long once canonical is refused; a mount source too long is no mount. Pure.
 */
export function canonicalRoute(targets: readonly Routed[], route: Route): Route | OciError {
  if (route.name === undefined) return route;
  const canonical = canonicalAmong(targets);
  const name = canonical(route.name);
  const from = route.mountFrom === undefined ? undefined : canonical(route.mountFrom);
  if (name === route.name && from === route.mountFrom) return route;
  if (!isValidRepositoryName(name))
    return new OciError(400, 'NAME_INVALID', `repository name ${JSON.stringify(name.slice(0, 300))} is too long`);
  if (from !== undefined && !isValidRepositoryName(from)) return canonicalRoute(targets, withoutMount(route));
  const r = renamed(route, name);
  if (from === undefined) return r;
  const params = new URLSearchParams(r.query.slice(1));
  params.set('from', from);
  // The mount source's pull scope, unless it is the repository itself (then its own scope covers it).
  const scopes =
    from === name ? r.scopes.slice(0, 1) : [r.scopes[0]!, { type: 'repository', name: from, actions: ['pull'] }];
  return { ...r, scopes, query: `?${params}`, mountFrom: from };
}

/** The route for another name of its repository: path and the repository's own scope follow. */
function renamed(route: Route, name: string): Route {
  const path = `/v2/${name}${route.path.slice(`/v2/${route.name!}`.length)}`;
  return {
    ...route,
    name,
    path,
    scopes: route.scopes.map((s) => (s.type === 'repository' && s.name === route.name ? { ...s, name } : s)),
  };
}

/**
 * The client's name for a repository the target's catalog lists: the prefix added. Undefined when
 * that name would not reach this very repository through the proxy (invalid, routed to another
 * upstream, or mapped to another name, as a single-segment name on Docker Hub is): a lister is shown
 * only names that work, and policy judges the name clients use. Pure.
 */
export function catalogName(targets: readonly Routed[], target: Routed, name: string): string | undefined {
  const client = `${target.prefix}${name}`;
  if (!isValidRepositoryName(client) || upstreamFor(targets, client) !== target) return undefined;
  return upstreamName(target, client) === name ? client : undefined;
}

/** The target serving a route: by name; ping and catalog go to the default (or the only) upstream. */
export function targetOf(targets: readonly Target[], route: Route): Target | undefined {
  if (route.name !== undefined) return upstreamFor(targets, route.name);
  return targets.find((t) => t.prefix === '') ?? targets[0];
}

/**
 * containerd's mirror mode (`?ns=<registry host>`): `ns` is looked up among the registries the
 * configured upstreams stand for (`registry`, else the URL's host), never dialed, and the request
 * is taken as one for that upstream: the name gets its prefix (`library/nginx` →
 * `hub/library/nginx`) unless it routes there already (hosts.toml with override_path), so policy,
 * token and forwarding all see the same name. An `ns` that names no configured upstream is refused
 * (404 NAME_UNKNOWN, and containerd falls back to the next host): prefix routing would serve
 * another registry's image under the name asked for. A mount is dropped (mirrors are pull-only).
 * Without `ns` or a name, the route as it was. Pure.
 */
export function withNamespace(targets: readonly Routed[], route: Route, ns: string | null): Route | OciError {
  if (ns === null || route.name === undefined) return route;
  const hosts = targets.filter((t) => registryOf(t) === canonicalRegistry(ns));
  if (hosts.length === 0)
    return new OciError(404, 'NAME_UNKNOWN', `no upstream is configured for registry ${JSON.stringify(ns)} (ns)`);
  const current = upstreamFor(targets, route.name);
  if (current && hosts.includes(current)) return route;
  const name = `${hosts[0]!.prefix}${route.name}`;
  if (!isValidRepositoryName(name) || upstreamFor(targets, name) !== hosts[0]) {
    return new OciError(
      404,
      'NAME_UNKNOWN',
      `repository ${route.name} cannot be reached on registry ${JSON.stringify(ns)} (ns)`,
    );
  }
  return renamed(route.mountFrom !== undefined ? withoutMount(route) : route, name);
}

/**
 * The route as the upstream must see it: names without the prefix in path, scopes and `from`. A
 * mount from a repository of another upstream cannot happen there: it becomes a plain upload.
 */
export function toUpstream(targets: readonly Target[], target: Target, route: Route): Route {
  const r =
    route.mountFrom !== undefined && upstreamFor(targets, route.mountFrom) !== target ? withoutMount(route) : route;
  if (target.prefix === '' || r.name === undefined) return r;
  const map = (n: string) => upstreamName(target, n);
  const name = map(r.name!);
  let query = r.query;
  if (r.mountFrom !== undefined) {
    const params = new URLSearchParams(r.query.slice(1));
    params.set('from', map(r.mountFrom));
    query = `?${params}`;
  }
  return {
    ...r,
    name,
    path: `/v2/${name}${r.path.slice(`/v2/${r.name!}`.length)}`,
    query,
    scopes: r.scopes.map((s) => (s.type === 'repository' ? { ...s, name: map(s.name) } : s)),
    mountFrom: r.mountFrom === undefined ? undefined : map(r.mountFrom),
  };
}

/**
 * The client's path for one of the upstream's: `/v2/<name>/…` with the prefix back, which is the
 * canonical client name the request was authorized under (`library/nginx` → `hub/library/nginx`). Pure.
 */
export function clientPath(prefix: string): ((path: string) => string) | undefined {
  if (prefix === '') return undefined;
  return (path) =>
    path.startsWith('/v2/') && path !== '/v2/' && !path.startsWith('/v2/_') ? `/v2/${prefix}${path.slice(4)}` : path;
}

/** Enough of a tags list's head to hold its `name` (registries write it first). */
const HEAD_BYTES = 4096;

/**
 * A `tags/list` body with its `"name"` given back as the client's (`library/nginx` →
 * `hub/library/nginx`), streaming: only the first few KiB are held, and the rest passes as it comes.
 */
export function tagsNameRewrite(upstream: string, client: string): () => Transform {
  const pattern = new RegExp(`("name"\\s*:\\s*)${JSON.stringify(upstream).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`);
  return () => {
    let head: Buffer | undefined = Buffer.alloc(0);
    const release = (t: Transform) => {
      // latin1 maps bytes to chars one to one: a multi-byte character cut at the end survives.
      t.push(
        Buffer.from(
          head!.toString('latin1').replace(pattern, (_m, key: string) => `${key}${JSON.stringify(client)}`),
          'latin1',
        ),
      );
      head = undefined;
    };
    return new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (head === undefined) return cb(null, chunk);
        head = Buffer.concat([head, chunk]);
        if (head.length >= HEAD_BYTES) release(this);
        cb();
      },
      flush(cb) {
        if (head !== undefined) release(this);
        cb();
      },
    });
  };
}
