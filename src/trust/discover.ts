import { CHAIN_ANNOTATION, REKOR_BUNDLE_ANNOTATION } from './legacy-keyless.js';
import { INDEX_TYPE, LookupError, SIGNATURE_MAX_BYTES, type RepoReader } from './fetch.js';
import type { Candidate, Discovery } from './types.js';

/**
 * Finds the signatures of one manifest digest in one repository, the three ways cosign and other
 * sigstore clients attach them: the OCI 1.1 referrers API, its fallback tag `sha256-<hex>` (an
 * index of referrers, for registries without the API), and cosign's `sha256-<hex>.sig` tag. Any
 * failure to look is an error result, never "no signature": the caller refuses on it.
 */

/** What cosign (`--new-bundle-format`, the default from v3) and sigstore clients attach. */
const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SIMPLE_SIGNING_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';

/** More than this many signature artifacts for one image is not a signing workflow: the rest are not read. */
const MAX_ARTIFACTS = 16;

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  artifactType?: unknown;
  annotations?: unknown;
}

function descriptors(json: unknown, key: 'manifests' | 'layers'): Descriptor[] | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const list = (json as Record<string, unknown>)[key];
  return Array.isArray(list) ? list.filter((d): d is Descriptor => typeof d === 'object' && d !== null) : undefined;
}

function annotation(d: Descriptor, key: string): string | undefined {
  const a = d.annotations as Record<string, unknown> | undefined;
  return typeof a?.[key] === 'string' ? a[key] : undefined;
}

/** Pages of the referrers API followed at most (each up to 1 MiB): more is not a signing workflow. */
const MAX_REFERRER_PAGES = 8;

/**
 * The next page of a referrers answer (OCI distribution-spec 1.1: `Link: <url>; rel="next"`): a
 * path of the same referrers list on the same upstream (relative, or absolute with its origin),
 * none, or why it is not followed (another host would be sent the upstream's credentials). Pure.
 */
export function nextReferrersPage(
  link: string | string[] | undefined,
  repo: { name: string; origin: string },
  digest: string,
): { path?: string; problem?: string } {
  for (const part of [link ?? []].flat().flatMap((l) => l.split(','))) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m || !/(^|;)\s*rel="?next"?\s*(;|$)/.test(m[2]!)) continue;
    const path = `/v2/${repo.name}/referrers/${digest}`;
    let url: URL | undefined;
    try {
      url = new URL(m[1]!, repo.origin);
    } catch {
      url = undefined;
    }
    return url?.origin === repo.origin && url.pathname === path
      ? { path: `${path}${url.search}` }
      : { problem: `the next page is not a path of ${path}` };
  }
  return {};
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One page of the referrers API: its descriptors (undefined: a 404 or not an index) and the next page's path. */
async function referrersPage(repo: RepoReader, digest: string, path: string) {
  const answer = await repo.get(path, INDEX_TYPE, SIGNATURE_MAX_BYTES * 4);
  if (answer.status !== 404 && answer.status !== 200)
    throw new LookupError(`referrers of ${repo.name}: upstream answered HTTP ${answer.status}`);
  const list = answer.status === 200 ? descriptors(jsonOrUndefined(answer.text), 'manifests') : undefined;
  const next = nextReferrersPage(answer.headers.link, repo, digest);
  if (next.problem) throw new LookupError(`referrers of ${repo.name}: ${next.problem}`);
  return { list, next: next.path };
}

/** The referrers list: the API (every page), else (404 or an answer that is not an index) the fallback tag; undefined: none. */
async function referrers(repo: RepoReader, digest: string, looked: string[]): Promise<Descriptor[] | undefined> {
  looked.push(`referrers API of ${repo.name}`);
  let page = await referrersPage(
    repo,
    digest,
    `/v2/${repo.name}/referrers/${digest}?artifactType=${encodeURIComponent(BUNDLE_TYPE)}`,
  );
  if (page.list) {
    const all = [...page.list];
    for (let n = 1; page.next !== undefined; n++) {
      if (n === MAX_REFERRER_PAGES)
        throw new LookupError(`referrers of ${repo.name}: more than ${MAX_REFERRER_PAGES} pages`);
      page = await referrersPage(repo, digest, page.next);
      if (!page.list) throw new LookupError(`referrers of ${repo.name}: page ${n + 1} is not an image index`);
      all.push(...page.list);
    }
    return all;
  }
  const tag = digest.replace(':', '-');
  looked.push(`tag ${tag}`);
  const index = await repo.manifest(tag);
  return index ? (descriptors(index.json, 'manifests') ?? []) : undefined;
}

/** The Sigstore bundles among the referrers (the API may ignore the filter: it is applied here too). */
async function bundles(repo: RepoReader, list: Descriptor[], subject: string): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const d of list
    .filter((x) => x.artifactType === BUNDLE_TYPE && typeof x.digest === 'string')
    .slice(0, MAX_ARTIFACTS)) {
    const manifest = await repo.manifest(d.digest as string);
    if (!manifest) continue; // listed but gone (deleted since): nothing to verify
    const m = manifest.json as { subject?: { digest?: unknown } };
    // A referrer of another image, listed here by a confused or hostile index, says nothing about this one.
    if (m.subject?.digest !== subject) continue;
    for (const layer of (descriptors(manifest.json, 'layers') ?? []).filter(
      (l) => l.mediaType === BUNDLE_TYPE && typeof l.digest === 'string',
    )) {
      const body = await repo.blob(layer.digest as string);
      try {
        out.push({
          kind: 'bundle',
          bundle: JSON.parse(body.toString('utf8')),
          source: `referrer ${d.digest as string}`,
        });
      } catch {
        // Not JSON: not a bundle, so no signature (verification would refuse it anyway).
      }
    }
  }
  return out;
}

/** cosign's `sha256-<hex>.sig` manifest: one simple-signing layer per signature. */
async function cosignTag(repo: RepoReader, digest: string, looked: string[]): Promise<Candidate[]> {
  const tag = `${digest.replace(':', '-')}.sig`;
  looked.push(`tag ${tag}`);
  const manifest = await repo.manifest(tag);
  if (!manifest) return [];
  const out: Candidate[] = [];
  const layers = (descriptors(manifest.json, 'layers') ?? []).filter(
    (l) => l.mediaType === SIMPLE_SIGNING_TYPE && typeof l.digest === 'string',
  );
  for (const layer of layers.slice(0, MAX_ARTIFACTS)) {
    const signature = annotation(layer, SIGNATURE_ANNOTATION);
    if (signature === undefined) continue;
    const payload = await repo.blob(layer.digest as string);
    const keyless = {
      certificate: annotation(layer, CERTIFICATE_ANNOTATION),
      chain: annotation(layer, CHAIN_ANNOTATION),
      rekorBundle: annotation(layer, REKOR_BUNDLE_ANNOTATION),
    };
    out.push({ kind: 'simple-signing', payload, signature, ...keyless, source: `tag ${tag}` });
  }
  return out;
}

/** Every signature found for `digest` in the repository `repo` reads; an upstream failure is an error result. */
export async function discoverSignatures(repo: RepoReader, digest: string): Promise<Discovery> {
  const looked: string[] = [];
  try {
    const list = await referrers(repo, digest, looked);
    const found = list ? await bundles(repo, list, digest) : [];
    return { ok: true, candidates: [...found, ...(await cosignTag(repo, digest, looked))], looked };
  } catch (err) {
    return { ok: false, error: (err as Error).message, looked };
  }
}
