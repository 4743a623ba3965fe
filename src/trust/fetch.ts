import { createHash } from 'node:crypto';
import { outbound, type OutboundAnswer } from '../http/outbound.js';
import type { Upstream } from '../upstream/upstream.js';

/**
 * Bounded reads of one repository's manifests and blobs for signature discovery, through the
 * upstream's own client. Signature artifacts are small: a manifest is capped at 4 MiB (the
 * distribution spec's limit), a signature payload or bundle at 256 KiB. Every body read by digest
 * is checked against that digest, so a registry cannot hand over other bytes under a known name.
 */

const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
export const SIGNATURE_MAX_BYTES = 256 * 1024;

export const INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';
const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  INDEX_TYPE,
].join(', ');

export class LookupError extends Error {
  override name = 'LookupError';
}

export interface RepoReader {
  /** The upstream's own name of the repository (prefix removed). */
  readonly name: string;
  /** The upstream's origin (`http://host:port`): where a relative or same-host link points. */
  readonly origin: string;
  get(path: string, accept: string, maxBytes: number): Promise<OutboundAnswer>;
  /** A manifest by tag or digest; undefined on 404. */
  manifest(reference: string): Promise<{ body: Buffer; json: unknown } | undefined>;
  /** A blob by digest, following one redirect to storage without the upstream's credentials. */
  blob(digest: string): Promise<Buffer>;
}

function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function checkDigest(bytes: Buffer, digest: string, what: string): void {
  // Only sha256 is checked; another algorithm is refused rather than believed.
  if (!digest.startsWith('sha256:') || sha256Digest(bytes) !== digest)
    throw new LookupError(`${what} ${digest}: the upstream sent other bytes`);
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new LookupError(`${what} is not JSON`);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function repoReader(upstream: Upstream, name: string, timeoutMs: number): RepoReader {
  const scopes = [{ type: 'repository', name, actions: ['pull'] }];
  const get: RepoReader['get'] = (path, accept, maxBytes) =>
    upstream.request(path, { scopes, headers: { accept }, maxBytes, timeoutMs }).catch((err: unknown) => {
      throw new LookupError((err as Error).message);
    });
  return {
    name,
    origin: new URL(upstream.url).origin,
    get,
    async manifest(reference) {
      const answer = await get(`/v2/${name}/manifests/${reference}`, MANIFEST_ACCEPT, MANIFEST_MAX_BYTES);
      if (answer.status === 404) return undefined;
      if (answer.status !== 200)
        throw new LookupError(`manifest ${reference} of ${name}: upstream answered HTTP ${answer.status}`);
      const body = Buffer.from(answer.text, 'utf8');
      if (reference.startsWith('sha256:')) checkDigest(body, reference, 'manifest');
      return { body, json: parseJson(body, `manifest ${reference}`) };
    },
    async blob(digest) {
      let answer = await get(`/v2/${name}/blobs/${digest}`, '*/*', SIGNATURE_MAX_BYTES);
      const location = answer.headers.location;
      if (REDIRECTS.has(answer.status) && typeof location === 'string') {
        const target = new URL(location, upstream.url);
        answer = await outbound(target, {
          dispatcher: upstream.agent.outbound,
          timeoutMs,
          maxBytes: SIGNATURE_MAX_BYTES,
        }).catch((err: unknown) => {
          throw new LookupError((err as Error).message);
        });
      }
      if (answer.status !== 200)
        throw new LookupError(`blob ${digest} of ${name}: upstream answered HTTP ${answer.status}`);
      const body = Buffer.from(answer.text, 'utf8');
      checkDigest(body, digest, 'blob');
      return body;
    },
  };
}
