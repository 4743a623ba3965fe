import type { ConfigFile } from './schema.js';
import type { NamedUpstream, UpstreamConfig } from './types.js';

/**
 * Several upstreams behind one proxy (`upstreams:`): which one a client's repository name goes to.
 * Pure; used by policy (request.upstream) and by the proxy (forwarder, credentials, names).
 */

/**
 * The one list every reader sees: `upstreams:` (prefix-less entry: prefix ''), with `upstream:` (or
 * `--upstream`, `RAP_UPSTREAM`) as its default. Validated here; the file's two shapes end here.
 */
export function resolveUpstreams(
  doc: Pick<ConfigFile, 'upstreams'>,
  single: UpstreamConfig | undefined,
  fail: (keyPath: string, problem: string) => never,
): readonly NamedUpstream[] {
  const list = (doc.upstreams ?? []).map(({ prefix, ...u }) => ({ ...u, prefix: prefix ?? '' }));
  if (single && list.some((u) => u.prefix === ''))
    fail('upstreams', 'an entry without prefix and upstream are both the default: keep one');
  if (single && list.some((u) => u.name === 'default'))
    fail('upstreams', 'the name "default" is upstream\'s when both are set');
  return withDefaultUpstream(list, single, doc.upstreams === undefined);
}

/**
 * `list` with `single` as its default upstream (prefix ''). `alone` (no `upstreams:`) it is unnamed
 * (''): CEL's `request.upstream` is "" (docs/policies.md), metrics carry no `upstream` label and /readyz names
 * none. Beside `upstreams:` it is named `default` (docs/upstreams.md). Pure.
 */
export function withDefaultUpstream(
  list: readonly NamedUpstream[],
  single: UpstreamConfig | undefined,
  alone = list.length === 0,
): readonly NamedUpstream[] {
  if (!single) return list;
  return [{ ...single, name: alone ? '' : 'default', prefix: '' }, ...list];
}

/** The default upstream (prefix ''): where names no prefix claims go; undefined if none. */
export function defaultUpstream(upstreams: readonly NamedUpstream[]): NamedUpstream | undefined {
  return upstreams.find((u) => u.prefix === '');
}

/** The upstream with the longest `timeout` (the idle cut of client connections must exceed it). */
export function slowest(upstreams: readonly NamedUpstream[]): UpstreamConfig | undefined {
  return upstreams.reduce<UpstreamConfig | undefined>((a, u) => (!a || u.timeout > a.timeout ? u : a), undefined);
}

/** The upstream serving a client's repository name: the longest matching prefix, else the default. */
export function upstreamFor<U extends { prefix: string }>(upstreams: readonly U[], name: string): U | undefined {
  let best: U | undefined;
  for (const u of upstreams) if (name.startsWith(u.prefix) && (!best || u.prefix.length > best.prefix.length)) best = u;
  return best;
}

/** `request.upstream` for a repository name: the upstream's name ('' for a lone `upstream:`, or none). */
export function upstreamNameOf(upstreams: readonly NamedUpstream[]): (repository: string) => string {
  return (repository) => upstreamFor(upstreams, repository)?.name ?? '';
}

/** Docker Hub's hosts: its API host and the names images and containerd use. */
const DOCKER_HUB_HOSTS: ReadonlySet<string> = new Set(['registry-1.docker.io', 'docker.io', 'index.docker.io']);

/** A registry's name as containerd and image references spell it: lower case, Docker Hub's hosts `docker.io`. */
export function canonicalRegistry(host: string): string {
  const h = host.toLowerCase();
  return DOCKER_HUB_HOSTS.has(h) ? 'docker.io' : h;
}

/**
 * The registry an upstream stands for (mirror mode's `?ns=`, mirror-config): `registry` when
 * configured (a pull-through cache at `cache:5000` standing for `docker.io`), else its URL's host. Pure.
 */
export function registryOf(upstream: { url: string; registry?: string }): string {
  return canonicalRegistry(upstream.registry ?? new URL(upstream.url).host);
}

/** Docker Hub itself, or a pull-through cache standing for it (`registry: docker.io`). Pure. */
function isDockerHub(upstream: { url: string; registry?: string }): boolean {
  return DOCKER_HUB_HOSTS.has(new URL(upstream.url).hostname) || registryOf(upstream) === 'docker.io';
}

/**
 * The one name of a repository, which policy, tokens and denials judge: on Docker Hub a single
 * segment after the prefix is an official image, so `hub/nginx` is `hub/library/nginx` — both reach
 * the same upstream repository, and judging the client's spelling would let one spelling past a
 * rule written for the other. Every other name is its own canonical form. Pure.
 */
export function canonicalRepository(
  upstreams: readonly { prefix: string; url: string; registry?: string }[],
  name: string,
): string {
  const u = upstreamFor(upstreams, name);
  if (!u || !isDockerHub(u)) return name;
  const rest = name.slice(u.prefix.length);
  return rest === '' || rest.includes('/') ? name : `${u.prefix}library/${rest}`;
}
