import { bundleFromJSON, isBundleWithDsseEnvelope, type Bundle } from '@sigstore/bundle';
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier, type Signer } from '@sigstore/verify';
import { parseSimpleSigning } from './simple-signing.js';
import type { KeyAnchor, SignerIdentity } from './types.js';

/**
 * A Sigstore bundle (cosign v3's default, attached as an OCI 1.1 referrer) verified fully offline
 * with @sigstore/verify against the pinned trusted root: the certificate chain to a Fulcio CA at
 * the log's integrated time, the SCT, the Rekor inclusion proof or promise and the signature, all
 * from the bundle. No Fulcio, Rekor or TUF call is ever made. Then what was signed: a DSSE in-toto
 * statement of cosign's image-signature type whose subject is this manifest digest (an SBOM or
 * provenance attestation by the same identity is not a signature of the image).
 */

const IN_TOTO = 'application/vnd.in-toto+json';
const SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

/** What a bundle proved under one trusted root: the keys whose signature it is, or the certificate identity that signed. */
export interface BundleResult {
  keys: string[];
  identity?: SignerIdentity;
  problem?: string;
}

/** Why the statement inside a verified DSSE bundle does not sign this digest, or undefined. Pure. */
function statementProblem(bundle: Bundle, digest: string): string | undefined {
  if (!isBundleWithDsseEnvelope(bundle)) return 'a bundle holds a message signature, not a signed image statement';
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== IN_TOTO)
    return `a bundle's payload is ${envelope.payloadType}, not an in-toto statement`;
  let statement: { predicateType?: unknown; subject?: unknown };
  try {
    statement = JSON.parse(envelope.payload.toString('utf8')) as typeof statement;
  } catch {
    return "a bundle's statement is not JSON";
  }
  if (statement.predicateType !== SIGN_PREDICATE)
    return `a bundle is an attestation (${String(statement.predicateType)}), not an image signature`;
  const hex = digest.slice('sha256:'.length);
  const subjects = Array.isArray(statement.subject)
    ? (statement.subject as { digest?: Record<string, unknown> }[])
    : [];
  return subjects.some((s) => s?.digest?.sha256 === hex) ? undefined : 'a bundle signs another digest';
}

/**
 * `payload`: for a message-signature bundle restated from cosign's legacy keyless form, the signed
 * simple-signing payload, which must name the digest; otherwise the bundle must hold a signed statement.
 */
export type BundleVerifier = (json: unknown, digest: string, payload?: Buffer) => BundleResult;

function payloadProblem(payload: Buffer, digest: string): string | undefined {
  const claims = parseSimpleSigning(payload);
  if ('problem' in claims) return claims.problem;
  return claims.digest === digest ? undefined : `a keyless signature is for ${claims.digest}, not this digest`;
}

/**
 * Built once per trusted root: one Verifier for certificates, one per key (the bundle's key hint is
 * not trusted to pick the key). Which identities count is the caller's business (trust/identity.ts).
 */
export function bundleVerifier(root: TrustedRoot, keys: readonly KeyAnchor[]): BundleVerifier {
  const certificates = new Verifier(toTrustMaterial(root));
  const byKey = keys.map((k) => ({
    name: k.name,
    verifier: new Verifier(toTrustMaterial(root, () => ({ publicKey: k.key, validFor: () => true }))),
  }));
  return (json, digest, payload) => {
    let bundle: Bundle;
    try {
      bundle = bundleFromJSON(json);
    } catch (err) {
      return { keys: [], problem: `a bundle is malformed: ${(err as Error).message}` };
    }
    const problem = payload ? payloadProblem(payload, digest) : statementProblem(bundle, digest);
    if (problem) return { keys: [], problem };
    const entity = toSignedEntity(bundle, payload);
    if (entity.key.$case === 'public-key') {
      const verified = byKey
        .filter(({ verifier }) => failure(() => verifier.verify(entity)) === undefined)
        .map((k) => k.name);
      return verified.length
        ? { keys: verified }
        : { keys: [], problem: 'a bundle verified with none of the required keys' };
    }
    let signer: Signer | undefined;
    const why = failure(() => {
      signer = certificates.verify(entity);
    });
    const issuer = signer?.identity?.extensions?.issuer;
    const subject = signer?.identity?.subjectAlternativeName;
    if (!signer) return { keys: [], problem: `a keyless bundle did not verify: ${why ?? 'unknown error'}` };
    if (issuer === undefined || subject === undefined)
      return { keys: [], problem: 'a keyless certificate names no issuer or no subject' };
    return { keys: [], identity: { issuer, subject } };
  };
}

/** Runs `fn`: the message it threw, or undefined when it returned. */
function failure(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
