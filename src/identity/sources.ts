import type { IssuerConfig } from '../config/types.js';
import { issuerKeys, jwtSource, type KeyDeps } from './jwt-source.js';
import { LEGACY_KUBERNETES_ISSUER, legacySource } from './legacy-source.js';
import { createTokenReviewer, type TokenReviewer } from './token-review.js';
import { withTokenReview, type Review } from './token-review-source.js';
import type { IdentitySource } from './types.js';

interface SourceDeps extends KeyDeps {
  /** Replaces the TokenReview client (tests). */
  tokenReviewerFor?: (issuer: IssuerConfig) => TokenReviewer;
}

/**
 * The source that confirms tokens of one configured issuer. Chosen once, from its configuration —
 * the only place that tells the kinds apart: legacy service-account tokens, else a JWT issuer
 * (keys from a file or discovery), asking TokenReview too when configured.
 */
export function createIdentitySource(cfg: IssuerConfig, deps: SourceDeps): IdentitySource {
  if (cfg.issuer === LEGACY_KUBERNETES_ISSUER) {
    const keys = cfg.jwksFile ? issuerKeys(cfg, deps) : undefined;
    return legacySource(cfg, keys, reviewFor(cfg, deps), deps);
  }
  const jwt = jwtSource(cfg, issuerKeys(cfg, deps), deps);
  const review = reviewFor(cfg, deps);
  return review ? withTokenReview(jwt, review, deps) : jwt;
}

function reviewFor(cfg: IssuerConfig, deps: SourceDeps): Review | undefined {
  if (!cfg.tokenReview) return undefined;
  const reviewer =
    deps.tokenReviewerFor?.(cfg) ?? createTokenReviewer(cfg.tokenReview, deps.logger, undefined, cfg.timeout);
  return { reviewer, cacheTTL: cfg.tokenReview.cacheTTL };
}
