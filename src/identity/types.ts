import type { JWTPayload } from 'jose';
import type { IssuerConfig, Preset } from '../config/types.js';

/** A verified workload identity: what policies see as `identity` (plus `claims`). */
export interface Identity {
  /** Name of the configured issuer entry (`anonymous` for unauthenticated requests). */
  issuerName: string;
  /** The token's `iss`, which equals the configured issuer exactly. */
  issuer: string;
  subject: string;
  preset?: Preset;
  /** Kubernetes presets: from bound (`kubernetes.io`) or legacy (`kubernetes.io/serviceaccount/*`) claims. */
  namespace?: string;
  serviceAccount?: string;
  podName?: string;
  /** The verified token's claims. */
  claims: Record<string, unknown>;
  /** Token `exp` in epoch seconds, if it has one (legacy Kubernetes tokens do not). */
  expiresAt?: number;
}

/** Why an identity token was refused; each maps to a message a user can act on. */
type IdentityFailure =
  | 'malformed'
  | 'too_large'
  | 'unknown_issuer'
  | 'issuer_mismatch'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'
  | 'bad_signature'
  | 'unknown_key'
  | 'unsupported_algorithm'
  | 'forbidden_header'
  | 'missing_claim'
  | 'issuer_unavailable'
  | 'revoked';

export class IdentityError extends Error {
  constructor(
    readonly reason: IdentityFailure,
    message: string,
    /** The configured issuer's name, when the token got that far. */
    readonly issuerName?: string,
    /** Operator-only detail (e.g. why an issuer's keys could not be fetched): logged or shown by the CLI, never sent to clients. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}

export interface VerifyOptions {
  /** When set (a Basic username that names a configured issuer), the token must come from that issuer. */
  issuerName?: string;
}

/** Verifies identity tokens against the configured issuers only. */
export interface IdentityVerifier {
  verify(token: string, options?: VerifyOptions): Promise<Identity>;
  /**
   * The identity verify() already proved for this token, while its result is cached: a lookup, no
   * signature or network work (the /token limiter admits such callers by identity, not by address).
   */
  cached?(token: string, options?: VerifyOptions): Identity | undefined;
  /** True once every issuer that needs network keys has fetched them at least once (for /readyz). */
  ready(): boolean;
  /** Fetches remote keys ahead of the first request; failures are logged, not thrown. */
  warmUp(): Promise<void>;
  close(): Promise<void>;
}

/** Claims one source vouched for, and until when (epoch ms) that answer may be reused. */
export interface VerifiedClaims {
  claims: JWTPayload;
  until: number;
}

/**
 * One configured issuer and the way its tokens are confirmed: JWT keys (discovery or a file),
 * those keys plus Kubernetes TokenReview, or legacy service-account tokens. The verifier picks a
 * source by the token's exact `iss`; the source does the rest and throws IdentityError.
 */
export interface IdentitySource {
  readonly config: IssuerConfig;
  /** Confirms `token`, whose header passed checks.ts and whose unverified `payload.iss` is this issuer's. */
  verify(token: string, payload: JWTPayload): Promise<VerifiedClaims>;
  /** False until remote keys have loaded once (for /readyz); true when there are none to load. */
  ready(): boolean;
  /** Loads remote keys now (start-up); rejects when they cannot be fetched. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const ANONYMOUS_ISSUER_NAME = 'anonymous';

export function anonymousIdentity(): Identity {
  return { issuerName: ANONYMOUS_ISSUER_NAME, issuer: '', subject: 'anonymous', claims: {} };
}

/** True for the identity of an unauthenticated request (config `anonymous`), which proves nothing. */
export function isAnonymous(who: Identity): boolean {
  return who.issuerName === ANONYMOUS_ISSUER_NAME;
}
