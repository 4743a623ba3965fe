import { Transform } from 'node:stream';
import type { Config, UpstreamConfig } from '../config/types.js';
import { canonicalRegistry, DOCKER_HUB_HOSTS, registryOf, upstreamFor } from '../config/upstreams.js';
import type { Logger } from '../log.js';
import { OciError } from '../oci/errors.js';
import { withoutMount, type Route } from '../oci/route.js';
import { isValidRepositoryName } from '../oci/scope.js';
import { createForwarder, type Forwarder } from './forward.js';
import type { Metrics } from '../http/metrics.js';
import { renewalMetrics } from './renewal.js';
import { createUpstreamAuth, type UpstreamAuth } from './upstream-auth.js';

/**
 * Several upstreams behind one proxy: each with its own forwarder and credentials, chosen by the
 * repository name's prefix, which is removed on the way up and added back to Location and Link.
 */

export interface Target {
  /** `upstreams[].name` ('' for a lone `upstream:`). */
  name: string;
  prefix: string;
  upstream: UpstreamConfig;
  forwarder: Forwarder;
  auth: UpstreamAuth;
}

export function createTargets(config: Config, logger: Logger, draining?: () => boolean, metrics?: Metrics): Target[] {
  const list = config.upstreams ?? (config.upstream ? [{ ...config.upstream, name: '', prefix: '' }] : []);
  return list.map(({ name, prefix, ...upstream }) => ({
    name,
    prefix,
    upstream,
    forwarder: createForwarder({ ...config, upstream }, logger, draining),
    auth: createUpstreamAuth(upstream, logger, renewalMetrics(metrics, { name, url: upstream.url })),
  }));
}

/** Docker Hub itself, or a pull-through cache standing for it (`registry: docker.io`): both want `library/nginx`. */
function isDockerHub(upstream: UpstreamConfig): boolean {
  return DOCKER_HUB_HOSTS.has(new URL(upstream.url).hostname) || registryOf(upstream) === 'docker.io';
}

/** The upstream's name for a client's: the prefix removed; on Docker Hub a single segment is `library/…`. Pure. */
export function upstreamName(target: Pick<Target, 'prefix' | 'upstream'>, clientName: string): string {
  const name = clientName.slice(target.prefix.length);
  return target.prefix !== '' && !name.includes('/') && isDockerHub(target.upstream) ? `library/${name}` : name;
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
export function withNamespace(targets: readonly Pick<Target, 'prefix' | 'upstream'>[], route: Route, ns: string | null): Route | OciError {
  if (ns === null || route.name === undefined) return route;
  const hosts = targets.filter((t) => registryOf(t.upstream) === canonicalRegistry(ns));
  if (hosts.length === 0) return new OciError(404, 'NAME_UNKNOWN', `no upstream is configured for registry ${JSON.stringify(ns)} (ns)`);
  const current = upstreamFor(targets, route.name);
  if (current && hosts.includes(current)) return route;
  const name = `${hosts[0]!.prefix}${route.name}`;
  if (!isValidRepositoryName(name) || upstreamFor(targets, name) !== hosts[0]) {
    return new OciError(404, 'NAME_UNKNOWN', `repository ${route.name} cannot be reached on registry ${JSON.stringify(ns)} (ns)`);
  }
  const r = route.mountFrom !== undefined ? withoutMount(route) : route;
  return { ...r, name, path: `/v2/${name}${r.path.slice(`/v2/${r.name!}`.length)}`, scopes: r.scopes.map((s) => ({ ...s, name })) };
}

/**
 * The route as the upstream must see it: names without the prefix in path, scopes and `from`. A
 * mount from a repository of another upstream cannot happen there: it becomes a plain upload.
 */
export function toUpstream(targets: readonly Target[], target: Target, route: Route): Route {
  const r = route.mountFrom !== undefined && upstreamFor(targets, route.mountFrom) !== target ? withoutMount(route) : route;
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
 * The client's path for one of the upstream's: the request's own repository by the name the client
 * used (`library/nginx` → `hub/nginx`), any other `/v2/<name>/…` with the prefix back. Pure.
 */
export function clientPath(prefix: string, names?: { upstream?: string; client?: string }): ((path: string) => string) | undefined {
  if (prefix === '') return undefined;
  const own = names?.upstream !== undefined && names.client !== undefined ? `/v2/${names.upstream}/` : undefined;
  return (path) => {
    if (own && path.startsWith(own)) return `/v2/${names!.client!}/${path.slice(own.length)}`;
    return path.startsWith('/v2/') && path !== '/v2/' && !path.startsWith('/v2/_') ? `/v2/${prefix}${path.slice(4)}` : path;
  };
}

/** Enough of a tags list's head to hold its `name` (registries write it first). */
const HEAD_BYTES = 4096;

/**
 * A `tags/list` body with its `"name"` given back as the client's name (`library/nginx` →
 * `hub/nginx`), streaming: only the first few KiB are held, and the rest passes as it comes.
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
