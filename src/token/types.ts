import type { Identity } from '../identity/types.js';
import type { AccessEntry } from '../oci/access.js';
import type { Refusal } from '../policy/explain.js';

export type { AccessEntry };

/** Our own token, verified: what the proxy needs on every /v2/ request. */
export interface VerifiedRegistryToken {
  subject: string;
  access: AccessEntry[];
  expiresAt: number;
  /** Present on tokens that may list the catalog: who the token was issued to (for filtering). */
  identity?: Identity;
  /** What the policy refused of the requested scopes, and why (the `refused` claim); empty when nothing was. */
  refused: Refusal[];
}

/** Verifies our own registry tokens with no network: signature, `iss`, `aud`, `exp`; cached per token. */
export interface RegistryTokenVerifier {
  /** Throws RegistryTokenError when the token is not a valid token of ours. */
  verify(token: string): Promise<VerifiedRegistryToken>;
}

export class RegistryTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryTokenError';
  }
}
