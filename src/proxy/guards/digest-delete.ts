import type { Identity } from '../../identity/types.js';
import { deniedError } from '../../oci/challenge.js';
import type { OciError } from '../../oci/errors.js';
import { decideRequest, type RequestFacts, type RequestRefusal } from '../../policy/request.js';
import type { PolicyEngine } from '../../policy/types.js';
import { explained, type GuardUpstream } from '../guards.js';
import { listTags, type TagLookups } from './tag-lookup.js';

/**
 * A manifest deleted by digest takes every tag pointing at it along (Distribution; `skopeo delete`
 * of a tag deletes its digest): so the request-time rules are asked, once per such tag, as a DELETE
 * of that tag. A tag whose lookup fails counts as pointing at it (fail closed); a tags list that
 * cannot be read refuses the delete.
 */

/** At most this many tag lookups in flight for one delete. */
const PARALLEL = 16;

type DigestDeleteAnswer =
  | { refused: { facts: RequestFacts; refusal: RequestRefusal } }
  | { error: OciError }
  /** Allowed; these tags pointed at the digest (their cached lookups are stale once it is deleted). */
  | { tags: string[] };

export async function digestDelete(
  engine: PolicyEngine,
  identity: Identity,
  facts: RequestFacts,
  target: GuardUpstream,
  name: string,
  lookups: TagLookups,
): Promise<DigestDeleteAnswer> {
  const tags = await listTags(target, name);
  if ('error' in tags) {
    const message = `cannot tell which tags point at ${facts.reference} (${tags.error}): the delete is refused while request-time rules protect tags`;
    return { error: explained(deniedError(message, undefined), `${message} (${facts.repository})`) };
  }
  const pointing: string[] = [];
  for (let i = 0; i < tags.length; i += PARALLEL) {
    const batch = tags.slice(i, i + PARALLEL);
    const found = await Promise.all(batch.map((tag) => lookups.get(target, name, tag, true)));
    for (const [j, lookup] of found.entries()) {
      // Listed but said absent (deleted meanwhile, or an upstream that lists what it cannot HEAD): counted as pointing at it.
      if ('digest' in lookup && lookup.tagExists && lookup.digest !== facts.reference) continue;
      const tagFacts: RequestFacts = { ...facts, reference: batch[j]!, lookup };
      const refusal = decideRequest(engine, identity, tagFacts);
      if (refusal) return { refused: { facts: tagFacts, refusal } };
      pointing.push(batch[j]!);
    }
  }
  return { tags: pointing };
}
