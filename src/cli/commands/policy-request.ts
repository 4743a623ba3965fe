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
  bodyDigest?: string;
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
  if (f.bodyDigest !== undefined && !isValidDigest(f.bodyDigest))
    throw new CliExit(2, '--body-digest must be a digest (sha256:…)');
  return {
    method: f.method.toUpperCase(),
    kind,
    repository: scope.type === 'repository' ? scope.name : '',
    actions: scope.actions,
    reference: f.reference ?? '',
    mediaType: f.mediaType ?? '',
    contentLength: length,
    upstream: ctx.upstream,
    service: ctx.service,
    clientIP: ctx.clientIP,
    bodyDigest: f.bodyDigest,
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
    .option('--reference <ref>', 'request.reference: a tag (request.tag) or a digest (request.digest)')
    .option('--tag-exists', 'upstream.tagExists: the upstream holds the tag')
    .option('--upstream-digest <digest>', 'upstream.digest: what the tag points at now (implies --tag-exists)')
    .option('--upstream-error <why>', 'the upstream lookup fails with this reason (rules reading upstream.* refuse)')
    .option('--body-digest <digest>', 'request.bodyDigest: the digest of the manifest being PUT')
    .option('--media-type <type>', 'request.mediaType: the Content-Type')
    .option('--content-length <bytes>', 'request.contentLength (default: none, -1 in CEL)');
}
