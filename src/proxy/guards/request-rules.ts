import { createHash } from 'node:crypto';
import type { Config } from '../../config/types.js';
import { clientIPOf } from '../../http/client-ip.js';
import type { Identity } from '../../identity/types.js';
import { deniedError } from '../../oci/challenge.js';
import { OciError } from '../../oci/errors.js';
import { isValidDigest } from '../../oci/scope.js';
import { requestDenialMessage } from '../../policy/explain.js';
import {
  decideRequest,
  lazyFactsNeeded,
  requestKind,
  type RequestFacts,
  type RequestRefusal,
} from '../../policy/request.js';
import type { PolicyEngine } from '../../policy/types.js';
import { explained, type Guard, type GuardContext, type GuardHold } from '../guards.js';
import { upstreamName } from '../upstreams.js';
import { digestDelete } from './digest-delete.js';
import { createKeyedLock } from './keyed-lock.js';
import { declaredLength, manifestTooLarge, mediaTypeOf } from './manifest-limits.js';
import { readBody, TOO_LARGE } from './read-body.js';
import { createTagLookups, type TagLookups } from './tag-lookup.js';

/**
 * Request-time rules (issue 21, the proxy side): the policy's `phase: request | both` deny rules over
 * each `/v2/` request. The facts come from the route, the head and the token's identity; the upstream
 * is asked (one HEAD: cached for reads, fresh for a write) and the manifest hashed (request.digest of
 * a manifest PUT) only when a rule that applies reads them. A push or delete of a tag that depends on the upstream's answer holds a
 * per-tag lock from the check until its exchange ends, so two writes of one tag through this process
 * are not interleaved.
 */

type RulesConfig = Pick<Config, 'service' | 'explainDenials' | 'limits'>;

/** A token issued before the policy had request rules carries no identity: rules see an empty one (claims missing: they refuse). */
const NO_IDENTITY: Identity = { issuerName: '', issuer: '', subject: '', claims: {} };

/** The facts of the request the guard can read without asking anyone (pure but for the client address). */
export function requestFacts(
  ctx: Pick<GuardContext, 'req' | 'route' | 'upstream' | 'body' | 'authorized' | 'image'>,
  service: string,
): RequestFacts | undefined {
  const { req, route } = ctx;
  const kind = requestKind(route.kind);
  if (!kind) return undefined;
  const contentLength = ctx.body?.length ?? declaredLength(req);
  return {
    method: route.method,
    kind,
    repository: route.name ?? '',
    actions: route.scopes[0]?.actions ?? [],
    reference: (ctx.authorized ?? route).reference ?? '',
    mediaType: mediaTypeOf(req.headers['content-type']),
    ...(contentLength === undefined ? {} : { contentLength }),
    upstream: ctx.upstream.name,
    service,
    clientIP: clientIPOf(req),
    ...(ctx.image ? { image: ctx.image } : {}),
  };
}

/** The tag a manifest request names ('' for a digest or another kind). Pure. */
const tagOf = (f: RequestFacts): string =>
  f.kind === 'manifest' && f.reference && !isValidDigest(f.reference) ? f.reference : '';
const writes = (f: RequestFacts): boolean => f.method === 'PUT' || f.method === 'DELETE';

/** The 403 a client prints, with its one-line reason for the log. Pure. */
function refusalError(
  identity: Identity | undefined,
  facts: RequestFacts,
  refusal: RequestRefusal,
  detail: boolean,
): OciError {
  const who = identity ? { issuerName: identity.issuerName, subject: identity.subject } : undefined;
  const message = requestDenialMessage(who, facts, refusal, detail);
  const more = detail
    ? { ...(who ?? {}), rule: refusal.refused.name, reason: refusal.reason, check: 'registry-auth-proxy policy test' }
    : [{ Type: 'repository', Name: facts.repository, Action: facts.actions.join(',') }];
  return explained(
    deniedError(message, more),
    `${refusal.reason} (${facts.method} ${facts.repository}${facts.reference ? ` ${facts.reference}` : ''})`,
  );
}

/** A manifest PUT by digest that also names tags (`?tag=`, OCI 1.1) would write tags no rule was asked about: refused. */
function taggedDigestPush(facts: RequestFacts, query: string): OciError | undefined {
  if (facts.kind !== 'manifest' || facts.method !== 'PUT' || !query || !new URLSearchParams(query).has('tag'))
    return undefined;
  const message =
    'a manifest PUT naming tags in its query (?tag=) is refused while request-time rules apply: push each tag by its own PUT';
  return explained(deniedError(message, undefined), `${message} (${facts.repository})`);
}

const busy = (repository: string, tag: string): OciError =>
  new OciError(
    503,
    'UNAVAILABLE',
    `another push or delete of ${repository}:${tag} is in progress through this proxy: retry`,
    {
      headers: { 'Retry-After': '1' },
    },
  );

/** The algorithms a manifest digest may use (go-digest's, as Distribution accepts them). */
const DIGEST_ALGORITHMS = new Set(['sha256', 'sha384', 'sha512']);

/**
 * The pushed manifest's digest when a rule reads request.digest: the body an earlier guard read, or
 * read here (capped); or the 413. A PUT by digest is hashed with the reference's algorithm and must
 * hash to it: otherwise a rule would judge the digest the client claims, not the bytes it sends
 * (Distribution refuses that PUT too, but a rule must not depend on the upstream checking).
 */
async function pushedDigest(
  ctx: GuardContext,
  reference: string,
  maxBytes: number,
): Promise<{ body: Buffer; digest: string } | OciError> {
  const claimed = isValidDigest(reference) ? reference : undefined;
  const algorithm = claimed ? claimed.slice(0, claimed.indexOf(':')) : 'sha256';
  if (!DIGEST_ALGORITHMS.has(algorithm))
    return new OciError(400, 'DIGEST_INVALID', `unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  const declared = declaredLength(ctx.req);
  if (!ctx.body && declared !== undefined && declared > maxBytes) return manifestTooLarge(maxBytes, declared);
  const body = ctx.body ?? (await readBody(ctx.req, maxBytes));
  if (body === TOO_LARGE) return manifestTooLarge(maxBytes);
  const digest = `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
  if (claimed && digest !== claimed)
    return explained(
      new OciError(400, 'DIGEST_INVALID', `the manifest's digest is ${digest}, not ${claimed} as its reference claims`),
      `manifest PUT under a digest its body does not hash to (${claimed}, body ${digest})`,
    );
  return { body, digest };
}

export function requestRulesGuard(
  engine: PolicyEngine,
  config: RulesConfig,
  lookups: TagLookups = createTagLookups(config.limits.tagLookupTTL),
): Guard {
  const locks = createKeyedLock(config.limits.tagLockWait);
  return async function requestRules(ctx) {
    const facts = requestFacts(ctx, config.service);
    if (!facts) return undefined;
    const tagged = taggedDigestPush(facts, ctx.route.query);
    if (tagged) return tagged;
    const identity = ctx.grant.identity ?? NO_IDENTITY;
    if (facts.kind === 'manifest' && facts.method === 'DELETE' && isValidDigest(facts.reference)) {
      const answer = await digestDelete(
        engine,
        identity,
        facts,
        ctx.upstream,
        upstreamName(ctx.upstream, facts.repository),
        lookups,
      );
      if ('error' in answer) return answer.error;
      if ('refused' in answer)
        return refusalError(ctx.grant.identity, answer.refused.facts, answer.refused.refusal, config.explainDenials);
      const name = upstreamName(ctx.upstream, facts.repository);
      return { hold: true, release: () => answer.tags.forEach((tag) => lookups.forget(ctx.upstream, name, tag)) };
    }
    const needed = lazyFactsNeeded(engine, identity, facts);
    const tag = tagOf(facts);
    const name = tag ? upstreamName(ctx.upstream, facts.repository) : '';
    let body: Buffer | undefined;
    if (needed.bodyDigest) {
      const read = await pushedDigest(ctx, facts.reference, config.limits.manifestMaxBytes);
      if (read instanceof OciError) return read;
      if (!ctx.body) body = read.body;
      facts.bodyDigest = read.digest;
    }
    let unlock: (() => void) | undefined;
    if (needed.tagExists || needed.digest) {
      if (writes(facts)) {
        unlock = await locks.acquire(`${ctx.upstream.name}\n${name}\n${tag}`);
        if (!unlock) return busy(facts.repository, tag);
      }
      // A write decides on a fresh answer; reads may use one a few seconds old.
      facts.lookup = await lookups.get(ctx.upstream, name, tag, writes(facts));
    }
    // This proxy writing the tag: whatever was cached about it is stale once the exchange ends.
    const release =
      tag && writes(facts) ? once(() => (lookups.forget(ctx.upstream, name, tag), unlock?.())) : undefined;
    const refusal = decideRequest(engine, identity, facts);
    if (refusal) {
      release?.();
      return refusalError(ctx.grant.identity, facts, refusal, config.explainDenials);
    }
    if (!release && !body) return undefined;
    const hold: GuardHold = { hold: true, ...(body ? { body } : {}), ...(release ? { release } : {}) };
    return hold;
  };
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
