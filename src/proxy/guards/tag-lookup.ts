import { LRUCache } from 'lru-cache';
import type { OutboundAnswer } from '../../http/outbound.js';
import type { UpstreamLookup } from '../../policy/request.js';
import type { GuardUpstream } from '../guards.js';

/**
 * What the upstream says a tag points at now, asked with the proxy's own credentials by one manifest
 * HEAD (`upstream.tagExists`, `upstream.digest` of request-time rules), and a short cache of the answers.
 * Both go through the upstream's own `request` (upstream/upstream.ts): its credentials, pools and
 * bounded read; a 401 there drops the credential it refused.
 */

/** Every manifest type, so the upstream answers with the digest it stores (Distribution converts to schema 1 otherwise). */
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
].join(', ');

/** A guard's question is short: never longer than this, whatever upstream.timeout allows a blob. */
const LOOKUP_TIMEOUT_MS = 10_000;

const failed = (why: string): UpstreamLookup => ({ error: why });

/** HEAD `/v2/<name>/manifests/<tag>` upstream (`name` as the upstream spells it): exists and its digest, absent, or why there is no answer. */
export async function headTag(target: GuardUpstream, name: string, tag: string): Promise<UpstreamLookup> {
  const scopes = [{ type: 'repository', name, actions: ['pull'] }];
  let answer: OutboundAnswer;
  try {
    // A HEAD's Content-Length is the manifest's: no body is read, so none is refused for its size.
    answer = await target.request(`/v2/${name}/manifests/${tag}`, {
      method: 'HEAD',
      scopes,
      headers: { accept: ACCEPT },
      timeoutMs: Math.min(target.config.timeout, LOOKUP_TIMEOUT_MS),
      maxBytes: Number.MAX_SAFE_INTEGER,
    });
  } catch (err) {
    return failed(`the upstream could not be asked: ${(err as Error).message}`);
  }
  if (answer.status === 404) return { tagExists: false, digest: '' };
  const digest = answer.headers['docker-content-digest'];
  if (answer.status !== 200) return failed(`the upstream answered HTTP ${answer.status} to the tag lookup`);
  if (typeof digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(digest))
    return failed('the upstream named no sha256 Docker-Content-Digest for the tag');
  return { tagExists: true, digest };
}

export interface TagLookups {
  /**
   * The upstream's answer for the tag: cached for `ttlMs` when it is one (a failure is asked again).
   * `fresh`: asked whatever is cached (a write decides on it: another replica may have written since).
   */
  get(target: GuardUpstream, name: string, tag: string, fresh?: boolean): Promise<UpstreamLookup>;
  /** Forget the answer: this proxy is writing (PUT, DELETE) that tag. */
  forget(target: GuardUpstream, name: string, tag: string): void;
}

const keyOf = (target: GuardUpstream, name: string, tag: string): string => `${target.name}\n${name}\n${tag}`;

export function createTagLookups(ttlMs: number, head: typeof headTag = headTag): TagLookups {
  const cache = ttlMs > 0 ? new LRUCache<string, UpstreamLookup>({ max: 10_000, ttl: ttlMs }) : undefined;
  return {
    async get(target, name, tag, fresh = false) {
      const key = keyOf(target, name, tag);
      const cached = fresh ? undefined : cache?.get(key);
      if (cached) return cached;
      const answer = await head(target, name, tag);
      if (!('error' in answer)) cache?.set(key, answer);
      return answer;
    },
    forget(target, name, tag) {
      cache?.delete(keyOf(target, name, tag));
    },
  };
}

/** Most tags listed when a manifest is deleted by digest (the guard checks each); more is no answer. */
const MAX_LISTED_TAGS = 1000;

/** The repository's tags upstream (`name` as the upstream spells it), or why there is no answer (more than MAX_LISTED_TAGS included). */
export async function listTags(target: GuardUpstream, name: string): Promise<string[] | { error: string }> {
  const scopes = [{ type: 'repository', name, actions: ['pull'] }];
  try {
    const timeoutMs = Math.min(target.config.timeout, LOOKUP_TIMEOUT_MS);
    const answer = await target.request(`/v2/${name}/tags/list?n=${MAX_LISTED_TAGS}`, {
      scopes,
      timeoutMs,
      maxBytes: 1 << 20,
    });
    if (answer.status === 404) return [];
    if (answer.status !== 200) return { error: `the upstream answered HTTP ${answer.status} to the tags list` };
    if (answer.headers.link) return { error: `the repository has more than ${MAX_LISTED_TAGS} tags` };
    const tags = (JSON.parse(answer.text) as { tags?: unknown }).tags ?? [];
    return Array.isArray(tags)
      ? tags.filter((t): t is string => typeof t === 'string')
      : { error: 'the upstream answered a tags list without tags' };
  } catch (err) {
    return { error: `the upstream could not be asked for the tags: ${(err as Error).message}` };
  }
}
