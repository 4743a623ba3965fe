import type { IssuerConfig } from '../config/types.js';
import { checkIssuedAt } from './checks.js';
import { expiryOf, verifySignature, type IssuerKeys } from './jwt-source.js';
import { confirmWithApiServer, type Review, type ReviewDeps } from './token-review-source.js';
import { IdentityError, type IdentitySource } from './types.js';

/** The `iss` of secret-based service-account tokens, and the `issuer` of the entry that accepts them. */
export const LEGACY_KUBERNETES_ISSUER = 'kubernetes/serviceaccount';

/**
 * Legacy secret-based service-account tokens: no audience, no expiry, valid until their Secret is
 * deleted — which only the API server knows. TokenReview (asked without audiences: these tokens are
 * the API server's own) vouches for them; a `jwksFile`, when configured, is checked first.
 */
export function legacySource(
  cfg: IssuerConfig,
  keys: IssuerKeys | undefined,
  review: Review | undefined,
  deps: ReviewDeps,
): IdentitySource {
  return {
    config: cfg,
    async verify(token, payload) {
      let claims = payload;
      if (keys) claims = await verifySignature(token, keys, cfg, deps.now(), { requiredClaims: [] });
      else if (!review)
        throw new IdentityError('issuer_unavailable', `issuer ${cfg.name} has no keys configured`, cfg.name);
      checkIssuedAt(claims, deps.now(), cfg.clockSkew, cfg.name);
      if (!review)
        throw new IdentityError(
          'unknown_issuer',
          'legacy service-account tokens are accepted only with tokenReview',
          cfg.name,
        );
      await confirmWithApiServer(review.reviewer, token, claims, undefined, cfg, deps.logger);
      return { claims, until: Math.min(expiryOf(claims), deps.now() + review.cacheTTL) };
    },
    ready: () => keys?.ready() ?? true,
    refresh: async () => keys?.refresh(),
    close: async () => {
      await Promise.all([keys?.close(), review?.reviewer.close()]);
    },
  };
}
