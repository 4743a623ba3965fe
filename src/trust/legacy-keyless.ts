import { createHash } from 'node:crypto';

/**
 * cosign's legacy keyless signature (cosign 1.x/2.x, the `.sig` tag) restated as the Sigstore
 * bundle v0.1 it is equivalent to, so @sigstore/verify checks it like any bundle: the layer's
 * signature over the simple-signing payload, the Fulcio certificate (and chain) annotations, and
 * the Rekor entry in `dev.sigstore.cosign/bundle` (canonical body, integrated time and the log's
 * signed entry timestamp, cosign's offline inclusion proof). cosign does the same conversion.
 * Pure: a malformed annotation gives undefined.
 */

export const REKOR_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';

const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';

/** The DER certificates of a PEM text, base64 (the bundle's rawBytes). */
function pemCertificates(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) =>
    m[1]!.replace(/\s+/g, ''),
  );
}

interface RekorBundle {
  SignedEntryTimestamp?: unknown;
  Payload?: { body?: unknown; integratedTime?: unknown; logIndex?: unknown; logID?: unknown };
}

export function legacyKeylessBundle(
  payload: Buffer,
  signature: string,
  annotations: { certificate: string; chain?: string; rekorBundle: string },
): Record<string, unknown> | undefined {
  let rekor: RekorBundle;
  let body: { kind?: unknown; apiVersion?: unknown };
  try {
    rekor = JSON.parse(annotations.rekorBundle) as RekorBundle;
    body = JSON.parse(Buffer.from(String(rekor.Payload?.body), 'base64').toString('utf8')) as typeof body;
  } catch {
    return undefined;
  }
  const p = rekor.Payload;
  const certificates = [...pemCertificates(annotations.certificate), ...pemCertificates(annotations.chain ?? '')];
  if (!p || typeof rekor.SignedEntryTimestamp !== 'string' || typeof p.logID !== 'string' || certificates.length === 0)
    return undefined;
  if (typeof body.kind !== 'string' || typeof body.apiVersion !== 'string') return undefined;
  return {
    mediaType: V01,
    verificationMaterial: {
      x509CertificateChain: { certificates: certificates.map((rawBytes) => ({ rawBytes })) },
      tlogEntries: [
        {
          logIndex: String(p.logIndex),
          logId: { keyId: Buffer.from(p.logID, 'hex').toString('base64') },
          kindVersion: { kind: body.kind, version: body.apiVersion },
          integratedTime: String(p.integratedTime),
          inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
          canonicalizedBody: p.body,
        },
      ],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(payload).digest('base64') },
      signature: signature.trim(),
    },
  };
}
