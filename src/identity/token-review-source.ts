import type { JWTPayload } from 'jose';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { TokenReviewer } from './token-review.js';
import { IdentityError, type IdentitySource } from './types.js';

/** A TokenReview client and how long (ms) its answers may be reused. */
export interface Review {
  reviewer: TokenReviewer;
  cacheTTL: number;
}

export interface ReviewDeps {
  logger: Logger;
  now: () => number;
}

/**
 * Asks the API server whether the token is still valid: it alone knows that a pod or a Secret was
 * deleted. `audiences` undefined asks for the API server's own audience (legacy tokens). Fails
 * closed: an API server that cannot be asked confirms nothing.
 */
export async function confirmWithApiServer(
  reviewer: TokenReviewer,
  token: string,
  claims: JWTPayload,
  audiences: string[] | undefined,
  cfg: IssuerConfig,
  logger: Logger,
): Promise<void> {
  let review;
  try {
    review = await reviewer.review(token, audiences);
  } catch (err) {
    logger.error(
      { issuer: cfg.name, err: (err as Error).message },
      'TokenReview failed: refusing the token (fail closed)',
    );
    throw new IdentityError(
      'issuer_unavailable',
      'the Kubernetes API server could not confirm the token (TokenReview failed); try again shortly',
      cfg.name,
    );
  }
  if (!review.authenticated) {
    throw new IdentityError(
      'revoked',
      `the Kubernetes API server rejected the token${review.error ? `: ${review.error}` : ''}`,
      cfg.name,
    );
  }
  if (audiences && review.audiences && !review.audiences.some((a) => audiences.includes(a))) {
    throw new IdentityError(
      'wrong_audience',
      `the token is not valid for audience ${audiences.join(' or ')}`,
      cfg.name,
    );
  }
  if (review.username && typeof claims.sub === 'string' && review.username !== claims.sub) {
    throw new IdentityError(
      'revoked',
      'the Kubernetes API server authenticated a different user than the token names',
      cfg.name,
    );
  }
}

/** `tokenReview` on a JWT issuer: its keys first, then the API server; the answer is reused for at most cacheTTL. */
export function withTokenReview(inner: IdentitySource, review: Review, deps: ReviewDeps): IdentitySource {
  const cfg = inner.config;
  return {
    config: cfg,
    async verify(token, payload) {
      const { claims, until } = await inner.verify(token, payload);
      await confirmWithApiServer(review.reviewer, token, claims, cfg.audiences, cfg, deps.logger);
      return { claims, until: Math.min(until, deps.now() + review.cacheTTL) };
    },
    ready: () => inner.ready(),
    refresh: () => inner.refresh(),
    close: async () => {
      await Promise.all([inner.close(), review.reviewer.close()]);
    },
  };
}
