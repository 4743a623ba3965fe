import { LRUCache } from 'lru-cache';
import { covers, type AccessEntry } from '../../oci/access.js';
import { isValidDigest } from '../../oci/scope.js';
import type { Route } from '../../oci/route.js';
import type { Verdict } from '../../trust/types.js';

/**
 * The pure half of signature enforcement (issue 22): which step a request is, what a manifest
 * references, whether it is a signature artifact, and the memory of what verified manifests of a
 * repository cover (their blobs, an index's children), bounded and expiring with the verdict.
 */

/** cosign's tags (`.sig`, `.att`, `.sbom`) and the referrers fallback tag: readable unverified (signers and verifiers read them). */
export const ARTIFACT_TAG = /^sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?$/;

/**
 * Layer types of signatures, attestations and SBOMs: no container runtime unpacks one. A manifest
 * whose every layer is one of these is a signature artifact, served (with its blobs) unverified.
 */
const ARTIFACT_LAYER_TYPES = new Set([
  'application/vnd.dev.cosign.simplesigning.v1+json',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
  'application/vnd.dsse.envelope.v1+json',
  'application/vnd.in-toto+json',
  'application/vnd.oci.empty.v1+json',
  'application/spdx+json',
  'text/spdx',
  'text/spdx+json',
  'application/vnd.cyclonedx+json',
]);

type SignatureStep =
  | { kind: 'skip' }
  | { kind: 'tag'; repository: string; tag: string }
  /** cosign's tags and the referrers fallback tag: served unverified, resolved to a digest so the blobs of a signature are remembered. */
  | { kind: 'artifact-tag'; repository: string; tag: string }
  | { kind: 'digest'; repository: string; digest: string }
  | { kind: 'blob'; repository: string; digest: string };

/** What the signature guard does with this route (`applies`: a trust policy names the repository). Pure. */
export function signatureStep(route: Route, applies: (repository: string) => boolean): SignatureStep {
  if (route.method !== 'GET' && route.method !== 'HEAD') return { kind: 'skip' };
  if ((route.kind !== 'manifest' && route.kind !== 'blob') || !route.name || !route.reference || route.notFound)
    return { kind: 'skip' };
  if (!applies(route.name)) return { kind: 'skip' };
  const repository = route.name;
  if (route.kind === 'blob') return { kind: 'blob', repository, digest: route.reference };
  if (isValidDigest(route.reference)) return { kind: 'digest', repository, digest: route.reference };
  return { kind: ARTIFACT_TAG.test(route.reference) ? 'artifact-tag' : 'tag', repository, tag: route.reference };
}

/** What a manifest references: child manifests (an index), blobs (config and layers), and whether it is a signature artifact. */
export interface ManifestFacts {
  children: string[];
  blobs: string[];
  artifact: boolean;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
}

const list = (x: unknown): Descriptor[] =>
  Array.isArray(x) ? x.filter((d): d is Descriptor => typeof d === 'object' && d !== null) : [];
const digests = (ds: Descriptor[]): string[] =>
  ds.map((d) => d.digest).filter((d): d is string => typeof d === 'string' && isValidDigest(d));

/** The references of a parsed manifest or index (anything else references nothing). Pure. */
export function manifestFacts(json: unknown): ManifestFacts {
  const m = (typeof json === 'object' && json !== null ? json : {}) as {
    manifests?: unknown;
    layers?: unknown;
    config?: unknown;
  };
  const layers = list(m.layers);
  const config = list([m.config]);
  const artifact =
    layers.length > 0 && layers.every((l) => typeof l.mediaType === 'string' && ARTIFACT_LAYER_TYPES.has(l.mediaType));
  return { children: digests(list(m.manifests)), blobs: digests([...config, ...layers]), artifact };
}

/** A token that may push to the repository: it checks blobs before uploading them (and could write them anyway). Pure. */
export function mayPush(access: readonly AccessEntry[], repository: string): boolean {
  return covers(access, { type: 'repository', name: repository, actions: ['push'] });
}

/** What this process knows about a manifest of a protected repository once it was let through. */
export interface Seen {
  facts: ManifestFacts;
  verdict: Verdict;
}

export interface Coverage {
  /** A manifest let through before (within the TTL): its facts and verdict. */
  seen(repository: string, digest: string): Seen | undefined;
  /** The verdict of a verified index listing this manifest, if any. */
  coveredBy(repository: string, digest: string): Verdict | undefined;
  /** A manifest let through: its blobs become servable and an index's children covered (with its verdict when verified). */
  remember(repository: string, digest: string, seen: Seen): void;
  /** Whether a manifest let through references this blob. */
  blobAllowed(repository: string, digest: string): boolean;
}

/** Bounded LRUs (`max` entries each) expiring after `ttlMs`, the verdicts' TTL. */
export function createCoverage(ttlMs: number, max = 50_000): Coverage {
  const ttl = Math.max(1, ttlMs);
  const manifests = new LRUCache<string, Seen>({ max, ttl });
  const children = new LRUCache<string, Verdict>({ max, ttl });
  const blobs = new LRUCache<string, true>({ max: max * 4, ttl });
  const key = (repository: string, digest: string): string => `${repository}@${digest}`;
  return {
    seen: (repository, digest) => manifests.get(key(repository, digest)),
    coveredBy: (repository, digest) => children.get(key(repository, digest)),
    remember(repository, digest, seen) {
      manifests.set(key(repository, digest), seen);
      // Set again on every pass: a pulled image's blobs stay the most recently used.
      for (const blob of seen.facts.blobs) blobs.set(key(repository, blob), true);
      if (!seen.verdict.verified) return;
      for (const child of seen.facts.children) children.set(key(repository, child), seen.verdict);
    },
    blobAllowed: (repository, digest) => blobs.has(key(repository, digest)),
  };
}
