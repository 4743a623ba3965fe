import type { Command } from 'commander';
import type { Identity } from '../../identity/types.js';
import { isValidDigest, type Scope } from '../../oci/scope.js';
import { decideRequest, type RequestFacts, type RequestKind, type UpstreamLookup } from '../../policy/request.js';
import type { PolicyEngine } from '../../policy/types.js';
import { CliExit } from '../exit.js';

/** `policy test --method …`: one /v2/ request per --scope, through the request-time rules (issue 21). */

export interface RequestFlags {
  method?: string;
  kind?: string;
  reference?: string;
  tagExists?: boolean;
  upstreamDigest?: string;
  upstreamError?: string;
  digest?: string;
  mediaType?: string;
  contentLength?: string;
}

const KINDS: readonly RequestKind[] = ['manifest', 'blob', 'upload', 'tags', 'referrers', 'catalog'];

interface RequestVerdict {
  request: string;
  refused: boolean;
  rule?: string;
  reason: string;
}

/** What the upstream would answer: an error, the tag's digest, or (default) no such tag. */
function lookupOf(f: RequestFlags): UpstreamLookup {
  if (f.upstreamError !== undefined) return { error: f.upstreamError };
  if (f.upstreamDigest !== undefined && !isValidDigest(f.upstreamDigest))
    throw new CliExit(2, '--upstream-digest must be a digest (sha256:…)');
  return { tagExists: f.tagExists === true || f.upstreamDigest !== undefined, digest: f.upstreamDigest ?? '' };
}

/**
 * request.digest of a manifest PUT (the pushed manifest's): --digest, else the digest reference.
 * Other requests' request.digest is their digest reference; a PUT by digest of other content is
 * refused by the proxy before any rule (400 DIGEST_INVALID), so neither has a --digest of its own.
 */
function pushedDigest(digest: string | undefined, method: string, kind: RequestKind, reference: string) {
  const claimed = isValidDigest(reference) ? reference : undefined;
  if (digest === undefined) return method === 'PUT' ? claimed : undefined;
  if (!isValidDigest(digest)) throw new CliExit(2, '--digest must be a digest (sha256:…)');
  if (method !== 'PUT' || kind !== 'manifest')
    throw new CliExit(
      2,
      "--digest is the pushed manifest's digest (--method PUT --kind manifest); otherwise give the digest as --reference",
    );
  if (claimed && digest !== claimed)
    throw new CliExit(
      2,
      `--digest differs from --reference ${claimed}: the proxy refuses a PUT whose manifest does not hash to its digest reference (400 DIGEST_INVALID)`,
    );
  return digest;
}

/** The facts a guard would gather for `scope` (its actions are what the request needs); usage errors exit 2. */
export function requestFacts(
  f: RequestFlags & { method: string },
  scope: Scope,
  ctx: { service: string; clientIP: string; upstream: string },
): RequestFacts {
  const kind = (f.kind ?? 'manifest') as RequestKind;
  if (!KINDS.includes(kind)) throw new CliExit(2, `--kind must be one of ${KINDS.join(', ')}`);
  const length = f.contentLength === undefined ? undefined : Number(f.contentLength);
  if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0))
    throw new CliExit(2, '--content-length must be a whole number of bytes');
  const method = f.method.toUpperCase();
  const reference = f.reference ?? '';
  return {
    method,
    kind,
    repository: scope.type === 'repository' ? scope.name : '',
    actions: scope.actions,
    reference,
    mediaType: f.mediaType ?? '',
    contentLength: length,
    upstream: ctx.upstream,
    service: ctx.service,
    clientIP: ctx.clientIP,
    bodyDigest: pushedDigest(f.digest, method, kind, reference),
    lookup: lookupOf(f),
  };
}

/** The request-time verdict on `facts`, in words (pure). */
export function explainRequest(engine: PolicyEngine, identity: Identity, facts: RequestFacts): RequestVerdict {
  const ref = facts.reference ? `${isValidDigest(facts.reference) ? '@' : ':'}${facts.reference}` : '';
  const request = `${facts.method} ${facts.kind} ${facts.repository || 'catalog'}${ref}`;
  const refusal = decideRequest(engine, identity, facts);
  if (!refusal) return { request, refused: false, reason: 'no request-time rule refuses' };
  return { request, refused: true, rule: refusal.refused.name, reason: refusal.reason };
}

export function requestOptions(cmd: Command): Command {
  return cmd
    .option(
      '--method <method>',
      'also decide a /v2/ request with this method (GET, HEAD, PUT, DELETE, …) per --scope through the request-time rules',
    )
    .option('--kind <kind>', `request.kind: ${KINDS.join(', ')}`, 'manifest')
    .option(
      '--reference <ref>',
      'request.reference: a tag (request.tag) or a digest (request.digest); absent: neither is set',
    )
    .option('--tag-exists', 'upstream.tagExists: the upstream holds the tag')
    .option('--upstream-digest <digest>', 'upstream.digest: what the tag points at now (implies --tag-exists)')
    .option('--upstream-error <why>', 'the upstream lookup fails with this reason (rules reading upstream.* refuse)')
    .option(
      '--digest <digest>',
      'request.digest of a manifest PUT by tag: the digest of the manifest being pushed (by digest it is the --reference)',
    )
    .option('--media-type <type>', 'request.mediaType: the Content-Type')
    .option('--content-length <bytes>', 'request.contentLength (default: none, -1 in CEL)');
}
