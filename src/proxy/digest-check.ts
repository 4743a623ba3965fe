import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';

/**
 * A manifest forwarded by the digest its signature was verified for (issue 22) must be that digest:
 * the upstream's Docker-Content-Digest is compared before anything is written, and a GET's body is
 * held (a manifest: at most 4 MiB) and hashed before it is released, so a registry that answers a
 * digest with other bytes gets the client a cut response, never the unverified manifest.
 */

const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

const mismatch = (expected: string): OciError =>
  new OciError(
    502,
    'UNKNOWN',
    `the upstream answered ${expected} with another manifest: refused (its signature was verified for ${expected})`,
  );

/** Answers 502 (and drains the upstream's body) when a 200 names another digest; true when it did. */
export function refuseOtherDigest(
  proxyRes: IncomingMessage,
  res: ServerResponse,
  expected: string,
  logger: Logger,
): boolean {
  const named = proxyRes.headers['docker-content-digest'];
  if ((proxyRes.statusCode ?? 0) !== 200 || named === undefined || named === expected) return false;
  logger.error({ expected, named }, 'upstream answered a verified manifest digest with another digest: refused');
  sendOciError(res, mismatch(expected));
  proxyRes.resume();
  return true;
}

/** A Transform that releases the body only once it hashes to `expected` (sha256), else fails (the client's response is cut). */
export function digestVerifier(expected: string): Transform {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > MANIFEST_MAX_BYTES)
        return done(new Error(`manifest ${expected} is larger than ${MANIFEST_MAX_BYTES} bytes`));
      hash.update(chunk);
      chunks.push(chunk);
      done();
    },
    flush(done) {
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== expected) return done(new Error(`the upstream sent ${got} for ${expected}`));
      done(null, Buffer.concat(chunks, size));
    },
  });
}
