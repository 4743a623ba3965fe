import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import type { KeyAnchor } from './types.js';

/**
 * cosign's legacy signature with a key: a simple-signing payload (a layer of the `.sig` manifest)
 * and the base64 signature over those exact bytes in the layer's annotation. The payload must name
 * this manifest digest and be a cosign container image signature; `docker-reference` is recorded,
 * not compared (cosign does not compare it either: the same image is reachable under many names).
 */

const SIMPLE_SIGNING_TYPE_CLAIM = 'cosign container image signature';

interface SimpleSigningPayload {
  digest: string;
  dockerReference?: string;
}

/** The payload's claims, or why it is not a cosign image signature. Pure. */
export function parseSimpleSigning(payload: Buffer): SimpleSigningPayload | { problem: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    return { problem: 'the signed payload is not JSON' };
  }
  const critical = (doc as { critical?: Record<string, unknown> } | null)?.critical;
  if (typeof critical !== 'object' || critical === null)
    return { problem: 'the signed payload has no critical section' };
  if (critical.type !== SIMPLE_SIGNING_TYPE_CLAIM)
    return { problem: `the signed payload's type is not "${SIMPLE_SIGNING_TYPE_CLAIM}"` };
  const digest = (critical.image as Record<string, unknown> | undefined)?.['docker-manifest-digest'];
  if (typeof digest !== 'string') return { problem: 'the signed payload names no manifest digest' };
  const ref = (critical.identity as Record<string, unknown> | undefined)?.['docker-reference'];
  return { digest, ...(typeof ref === 'string' ? { dockerReference: ref } : {}) };
}

/** cosign hashes with SHA-256 for ECDSA and RSA (PKCS#1 v1.5); Ed25519 signs the message itself. */
function algorithmFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
}

function signatureVerifies(key: KeyObject, payload: Buffer, signature: Buffer): boolean {
  try {
    return cryptoVerify(algorithmFor(key), payload, key, signature);
  } catch {
    return false;
  }
}

/** A base64 signature: strict enough that junk is not decoded into some bytes by accident. */
function decodeSignature(s: string): Buffer | undefined {
  const t = s.trim();
  return /^[A-Za-z0-9+/]+={0,2}$/.test(t) ? Buffer.from(t, 'base64') : undefined;
}

interface SimpleSigningResult {
  signers: string[];
  /** Why no key verified it, for the verdict's reason. */
  problem?: string;
  dockerReference?: string;
}

/** The keys among `keys` whose signature this is, over a payload for `digest`. Pure (CPU only). */
export function verifySimpleSigning(
  payload: Buffer,
  signature: string,
  digest: string,
  keys: readonly KeyAnchor[],
): SimpleSigningResult {
  const sig = decodeSignature(signature);
  if (!sig) return { signers: [], problem: 'a signature annotation is not base64' };
  const signers = keys.filter((k) => signatureVerifies(k.key, payload, sig)).map((k) => k.name);
  if (signers.length === 0) return { signers, problem: 'a signature verified with none of the required keys' };
  const claims = parseSimpleSigning(payload);
  if ('problem' in claims) return { signers: [], problem: claims.problem };
  if (claims.digest !== digest)
    return { signers: [], problem: `a signature by ${signers.join(', ')} is for ${claims.digest}, not this digest` };
  return { signers, ...(claims.dockerReference ? { dockerReference: claims.dockerReference } : {}) };
}
