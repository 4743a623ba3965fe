import type { ConfigFile } from './schema.js';
import type { Config, NamedUpstream, UpstreamConfig } from './types.js';

/**
 * Several upstreams behind one proxy (`upstreams:`): which one a client's repository name goes to.
 * Pure; used by policy (request.upstream) and by the proxy (forwarder, credentials, names).
 */

/** The entries of `upstreams:`, the prefix-less one (prefix '') standing for the default. */
export function resolveUpstreams(
  doc: Pick<ConfigFile, 'upstreams'>,
  single: UpstreamConfig | undefined,
  fail: (keyPath: string, problem: string) => never,
): readonly NamedUpstream[] | undefined {
  if (!doc.upstreams) return undefined;
  const list = doc.upstreams.map(({ prefix, ...u }) => ({ ...u, prefix: prefix ?? '' }));
  if (single && list.some((u) => u.prefix === '')) fail('upstreams', 'an entry without prefix and upstream are both the default: keep one');
  if (single && list.some((u) => u.name === 'default')) fail('upstreams', 'the name "default" is upstream\'s when both are set');
  return single ? [{ ...single, name: 'default', prefix: '' }, ...list] : list;
}

/** Every upstream with its prefix: `upstreams:`, else a lone `upstream:` as the default (prefix ''). */
export function routedUpstreams(config: Pick<Config, 'upstream' | 'upstreams'>): readonly NamedUpstream[] {
  return config.upstreams ?? (config.upstream ? [{ ...config.upstream, name: '', prefix: '' }] : []);
}

/** The upstream with the longest `timeout` (the idle cut of client connections must exceed it). */
export function slowest(single: UpstreamConfig | undefined, upstreams: readonly NamedUpstream[] | undefined): UpstreamConfig | undefined {
  return (upstreams ?? []).reduce<UpstreamConfig | undefined>((a, u) => (!a || u.timeout > a.timeout ? u : a), single);
}

/** The upstream serving a client's repository name: the longest matching prefix, else the default. */
export function upstreamFor<U extends { prefix: string }>(upstreams: readonly U[], name: string): U | undefined {
  let best: U | undefined;
  for (const u of upstreams) if (name.startsWith(u.prefix) && (!best || u.prefix.length > best.prefix.length)) best = u;
  return best;
}

/** `request.upstream` for a repository name: the upstream's name; '' with a single upstream. */
export function upstreamNameOf(upstreams: readonly NamedUpstream[] | undefined): (repository: string) => string {
  if (!upstreams) return () => '';
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
export function canonicalRepository(upstreams: readonly { prefix: string; url: string; registry?: string }[], name: string): string {
  const u = upstreamFor(upstreams, name);
  if (!u || !isDockerHub(u)) return name;
  const rest = name.slice(u.prefix.length);
  return rest === '' || rest.includes('/') ? name : `${u.prefix}library/${rest}`;
}
