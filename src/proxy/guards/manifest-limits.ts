import type { IncomingMessage } from 'node:http';
import type { LimitsConfig } from '../../config/types.js';
import { OciError } from '../../oci/errors.js';
import { scopedGuard, type Guard, type GuardScope } from '../guards.js';
import { readBody, TOO_LARGE } from './read-body.js';

/**
 * Manifest size and type limits (issue 21): a manifest PUT larger than `limits.manifestMaxBytes`
 * gets 413 before the upstream sees a byte, one whose Content-Type is not in
 * `limits.manifestMediaTypes` gets 415. A declared Content-Length is judged unread; a chunked body
 * is read up to the limit (then refused, or forwarded as those bytes).
 */

type ManifestLimits = Pick<LimitsConfig, 'manifestMaxBytes' | 'manifestMediaTypes'>;

/** Only a manifest PUT has a body this guard judges. */
const MANIFEST_PUT: GuardScope = { methods: ['PUT'], kinds: ['manifest'] };

/** The body is refused unread: the connection cannot be reused. */
const CLOSE = { Connection: 'close' };

/**
 * 413 with the code Distribution gives an oversized manifest (MANIFEST_INVALID; SIZE_INVALID means a
 * length that does not match the content) and the status the distribution spec asks for.
 */
export function manifestTooLarge(maxBytes: number, size?: number): OciError {
  const what = size === undefined ? 'manifest body is larger' : `manifest of ${size} bytes is larger`;
  return new OciError(
    413,
    'MANIFEST_INVALID',
    `${what} than this registry accepts: limits.manifestMaxBytes is ${maxBytes} bytes`,
    {
      detail: { limit: 'manifestMaxBytes', maxBytes, ...(size === undefined ? {} : { size }) },
      headers: CLOSE,
    },
  );
}

/** The media type of a Content-Type header (parameters and case dropped), '' when none. Pure. */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The declared Content-Length, undefined when none (chunked) or not a plain number. Pure. */
export function declaredLength(req: Pick<IncomingMessage, 'headers'>): number | undefined {
  const v = req.headers['content-length'];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Why a manifest PUT with this head is refused, or undefined. Pure. */
export function manifestHeadRefusal(
  head: { contentTypes: readonly string[]; contentLength?: number },
  limits: ManifestLimits,
): OciError | undefined {
  const { manifestMaxBytes, manifestMediaTypes } = limits;
  if (head.contentLength !== undefined && head.contentLength > manifestMaxBytes)
    return manifestTooLarge(manifestMaxBytes, head.contentLength);
  const types = head.contentTypes.map(mediaTypeOf);
  const list = manifestMediaTypes.join(', ');
  if (types.length !== 1 || types[0] === '') {
    const why = types.length > 1 ? 'several Content-Type headers' : 'no Content-Type';
    return new OciError(
      415,
      'MANIFEST_INVALID',
      `a manifest PUT must name one media type (it sent ${why}); accepted (limits.manifestMediaTypes): ${list}`,
      {
        detail: { limit: 'manifestMediaTypes', accepted: manifestMediaTypes },
        headers: CLOSE,
      },
    );
  }
  if (manifestMediaTypes.some((t) => t.toLowerCase() === types[0])) return undefined;
  return new OciError(
    415,
    'MANIFEST_INVALID',
    `manifest media type ${JSON.stringify(types[0]!.slice(0, 200))} is not accepted here; accepted (limits.manifestMediaTypes): ${list}`,
    { detail: { limit: 'manifestMediaTypes', mediaType: types[0], accepted: manifestMediaTypes }, headers: CLOSE },
  );
}

export function manifestLimitsGuard(limits: ManifestLimits): Guard {
  return scopedGuard(async function manifestLimits({ req, route }) {
    if (route.kind !== 'manifest' || route.method !== 'PUT') return undefined;
    const contentTypes =
      req.headersDistinct?.['content-type'] ?? (req.headers['content-type'] ? [req.headers['content-type']] : []);
    const contentLength = declaredLength(req);
    const refused = manifestHeadRefusal({ contentTypes, contentLength }, limits);
    if (refused || contentLength !== undefined) return refused;
    // Chunked: counted while read, never past the limit; the forwarder sends exactly these bytes.
    const body = await readBody(req, limits.manifestMaxBytes);
    return body === TOO_LARGE ? manifestTooLarge(limits.manifestMaxBytes) : { hold: true, body };
  }, MANIFEST_PUT);
}
