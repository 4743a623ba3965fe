import { createHash } from 'node:crypto';
import type { Logger } from '../../log.js';
import { deniedError } from '../../oci/challenge.js';
import { OciError } from '../../oci/errors.js';
import { classify, isRouteError, type Route } from '../../oci/route.js';
import { repoReader } from '../../trust/fetch.js';
import type { Verdict } from '../../trust/types.js';
import { trustOutcome } from '../../trust/verdict.js';
import type { Trust } from '../../trust/verify.js';
import { explained, scopedGuard, type Guard, type GuardContext, type GuardHold } from '../guards.js';
import { upstreamName } from '../upstreams.js';
import { createCoverage, manifestFacts, mayPush, signatureStep, type Coverage, type Seen } from './signature-cover.js';
import { createTagLookups, type TagLookups } from './tag-lookup.js';

/**
 * Signature enforcement (issue 22): a manifest GET/HEAD in a repository a `signatures:` entry names is
 * served only once its digest's signatures verify. A tag is resolved to its digest (one HEAD,
 * cached briefly), verified, and the request forwarded **by that digest**, so the upstream cannot
 * swap the tag between the check and the pull; the answer must carry that digest (digest-check.ts).
 * A verified index covers the manifests it lists; a blob is served only when a manifest let through
 * here references it. Signature artifacts stay readable: cosign's tags and the referrers fallback
 * tag pass unverified, and a manifest whose layers are all signatures or attestations (nothing a
 * runtime unpacks) passes with its blobs. Any failure to look refuses; `audit` serves and logs.
 */

interface SignatureGuardDeps {
  trust: Trust;
  logger: Logger;
  /** The verdicts' TTL: how long a manifest's coverage (its blobs, an index's children) is remembered. */
  ttlMs: number;
  lookupTimeoutMs: number;
  /** How long a tag's digest is believed (limits.tagLookupTTL): a stale one still names verified content. */
  tagTtlMs: number;
}

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');
const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

/** The 403 a client prints, with the same line for the log. */
const refusal = (message: string): OciError => explained(deniedError(message, undefined), message);

/** The manifest by digest, through the upstream (bounded, digest-checked), or why it could not be read. */
async function fetchManifest(
  ctx: GuardContext,
  repository: string,
  digest: string,
  timeoutMs: number,
): Promise<{ json: unknown } | { error: string }> {
  const name = upstreamName(ctx.upstream, repository);
  try {
    const answer = await repoReader(ctx.upstream, name, timeoutMs).get(
      `/v2/${name}/manifests/${digest}`,
      MANIFEST_ACCEPT,
      MANIFEST_MAX_BYTES,
    );
    if (answer.status !== 200) return { error: `the upstream answered HTTP ${answer.status} for the manifest` };
    const body = Buffer.from(answer.text, 'utf8');
    if (`sha256:${createHash('sha256').update(body).digest('hex')}` !== digest)
      return { error: 'the upstream sent another manifest for the digest' };
    return { json: JSON.parse(answer.text) as unknown };
  } catch (err) {
    return { error: `the manifest could not be read: ${(err as Error).message}` };
  }
}

/** The route by digest instead of tag: what classify makes of the same request by digest (so withinAuthorized accepts it). */
function byDigest(route: Route, digest: string): Route | undefined {
  const again = classify(route.method, `/v2/${route.name!}/manifests/${digest}`, route.query.replace(/^\?/, ''));
  return isRouteError(again) ? undefined : again;
}

const facts = (v: Verdict) => ({ verified: v.verified, signers: v.signers });

/** A blob of a protected repository: served when a manifest let through references it (or to a pusher); else refused, or logged (audit). */
function blobGate(
  deps: SignatureGuardDeps,
  coverage: Coverage,
  ctx: GuardContext,
  repository: string,
  digest: string,
): OciError | undefined {
  if (coverage.blobAllowed(repository, digest) || mayPush(ctx.grant.access, repository)) return undefined;
  const message = `${repository}: blob ${digest} is not referenced by a verified manifest of this repository: pull the image by a signed manifest first`;
  if (deps.trust.enforces(repository)) return refusal(message);
  deps.logger.warn({ repository, digest, recorded: [message] }, 'blob served unverified (audit)');
  return undefined;
}

type ManifestJudge = (
  ctx: GuardContext,
  repository: string,
  digest: string,
  artifactTag?: boolean,
) => Promise<Seen | OciError>;

/** A manifest judged by its signatures: remembered, or read and verified now; refused, or its facts and verdict (remembered). */
function manifestJudge(deps: SignatureGuardDeps, coverage: Coverage): ManifestJudge {
  const { trust, logger } = deps;

  /** The manifest's facts and verdict: remembered, or read and verified now; or the refusal. */
  async function judge(
    ctx: GuardContext,
    repository: string,
    digest: string,
    artifactTag: boolean,
  ): Promise<Seen | OciError | undefined> {
    const known = coverage.seen(repository, digest);
    if (known) return known;
    const read = await fetchManifest(ctx, repository, digest, deps.lookupTimeoutMs);
    if ('error' in read) return refusal(`${repository}@${digest}: could not look for signatures: ${read.error}`);
    const manifest = manifestFacts(read.json);
    // A signature or attestation: nothing a runtime runs, and what signers and verifiers must read.
    if (manifest.artifact) return { facts: manifest, verdict: { verified: false, signers: [], policies: [] } };
    // Something else under a signature's tag (the fallback index, or not a signature at all): served, nothing remembered.
    if (artifactTag) return undefined;
    const verdict = coverage.coveredBy(repository, digest) ?? (await trust.verifyImage(repository, digest));
    return { facts: manifest, verdict };
  }

  async function manifest(
    ctx: GuardContext,
    repository: string,
    digest: string,
    artifactTag = false,
  ): Promise<Seen | OciError> {
    const seen = await judge(ctx, repository, digest, artifactTag);
    if (seen === undefined)
      return { facts: manifestFacts(undefined), verdict: { verified: false, signers: [], policies: [] } };
    if (seen instanceof OciError) return seen;
    const outcome = trustOutcome(repository, digest, seen.verdict);
    if (outcome.action === 'refuse') return refusal(outcome.message);
    if (outcome.recorded.length)
      logger.warn({ repository, digest, recorded: outcome.recorded }, 'image signature not verified: served (audit)');
    coverage.remember(repository, digest, seen);
    return seen;
  }
  return manifest;
}

export function signaturesGuard(
  deps: SignatureGuardDeps,
  lookups: TagLookups = createTagLookups(deps.tagTtlMs),
  coverage: Coverage = createCoverage(deps.ttlMs),
): Guard {
  const { trust } = deps;
  const manifest = manifestJudge(deps, coverage);

  const guard: Guard = async function signatures(ctx) {
    const step = signatureStep(ctx.route, trust.applies);
    if (step.kind === 'skip') return undefined;
    if (step.kind === 'blob') return blobGate(deps, coverage, ctx, step.repository, step.digest);
    if (step.kind === 'digest') {
      const seen = await manifest(ctx, step.repository, step.digest);
      if (seen instanceof OciError) return seen;
      const hold: GuardHold = { hold: true, expectDigest: step.digest, image: facts(seen.verdict) };
      return hold;
    }
    return byTag(ctx, step.repository, step.tag, step.kind === 'artifact-tag');
  };

  /** The tag's digest now, verified; the request rewritten to that digest. */
  async function byTag(
    ctx: GuardContext,
    repository: string,
    tag: string,
    artifactTag: boolean,
  ): Promise<GuardHold | OciError> {
    const lookup = await lookups.get(ctx.upstream, upstreamName(ctx.upstream, repository), tag);
    if ('error' in lookup) return refusal(`${repository}:${tag}: could not look for signatures: ${lookup.error}`);
    // Forwarded by tag, an absent tag could be written before the upstream answers: answered here.
    if (!lookup.tagExists) return new OciError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${repository}:${tag}`);
    const seen = await manifest(ctx, repository, lookup.digest, artifactTag);
    if (seen instanceof OciError) return seen;
    const route = byDigest(ctx.route, lookup.digest);
    if (!route) return refusal(`${repository}:${tag}: the upstream named an unusable digest ${lookup.digest}`);
    return { hold: true, route, expectDigest: lookup.digest, image: facts(seen.verdict) };
  }
  return scopedGuard(guard, { methods: ['GET', 'HEAD'], kinds: ['manifest', 'blob'] });
}
