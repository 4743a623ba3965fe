import type { KeyObject } from 'node:crypto';

/** The nouns of signature trust: what a policy requires, what was found, what was concluded. */

/** A public key an entry trusts, by the name messages and `image.signers` use (its file name without extension). */
export interface KeyAnchor {
  kind: 'key';
  name: string;
  key: KeyObject;
}

/** A keyless identity: a Fulcio certificate for this issuer and subject, verified against the entry's trusted root. */
export interface KeylessAnchor {
  kind: 'keyless';
  /** For messages: `<issuer>, subject <subject>` or `<issuer>, subject matching <regexp>`. */
  name: string;
  issuer: string;
  /** Exact subject, or a pattern searched in it (as cosign's --certificate-identity-regexp). */
  subject: string | RegExp;
}

export type Anchor = KeyAnchor | KeylessAnchor;

/** One `signatures:` entry, its files read. */
export interface TrustPolicy {
  name: string;
  mode: 'enforce' | 'audit';
  repositories: readonly string[];
  patterns: readonly RegExp[];
  /** Any one key or keyless identity suffices. */
  require: readonly Anchor[];
  /** The entry's trustedRoot file (key into LoadedTrust.roots); bundles and keyless signatures verify only under it. */
  root?: string;
}

/** A certificate identity whose signature verified under a trusted root. */
export interface SignerIdentity {
  issuer: string;
  subject: string;
}

/** A signature as found next to an image, before anything about it is believed. */
export type Candidate =
  | {
      /** cosign's legacy `.sig` layer: the simple-signing payload and the signature annotation. */
      kind: 'simple-signing';
      payload: Buffer;
      signature: string;
      /** Keyless: `dev.sigstore.cosign/certificate`, `/chain` and `/bundle` (the Rekor entry), verified as a bundle v0.1. */
      certificate?: string;
      chain?: string;
      rekorBundle?: string;
      source: string;
    }
  | {
      /** A Sigstore bundle (application/vnd.dev.sigstore.bundle.v0.3+json), parsed JSON. */
      kind: 'bundle';
      bundle: unknown;
      source: string;
    };

/** Where signatures were looked for and what was found; `error` means "could not look": never "none". */
export type Discovery =
  { ok: true; candidates: Candidate[]; looked: string[] } | { ok: false; error: string; looked: string[] };

/** One policy's result for one image. */
export interface PolicyResult {
  policy: string;
  mode: 'enforce' | 'audit';
  satisfied: boolean;
  /** What would have satisfied it, for the refusal ("a signature by key prod-signing"). */
  required: string[];
}

export interface Verdict {
  /** Every policy that applies is satisfied (true when none applies). */
  verified: boolean;
  /** Anchors (by name) whose signature over this digest verified. */
  signers: string[];
  /** Why not verified: the first unsatisfied policy, or the lookup error. */
  reason?: string;
  policies: PolicyResult[];
  /** The lookup failed: nothing is known about the signatures. */
  error?: boolean;
}
