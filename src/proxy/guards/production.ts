import type { Config } from '../../config/types.js';
import type { Logger } from '../../log.js';
import type { PolicyEngine } from '../../policy/types.js';
import type { Trust } from '../../trust/verify.js';
import type { Guard } from '../guards.js';
import { manifestLimitsGuard } from './manifest-limits.js';
import { requestRulesGuard } from './request-rules.js';
import { signaturesGuard } from './signatures.js';

/**
 * The guards every proxied request passes, in order: manifest size and type limits (which may read a
 * chunked manifest, capped), signatures (only with `signatures:` entries: it resolves a tag to the digest
 * it verifies, and hands the verdict on), then the policy's request-time rules — each present only
 * when configured, so a config without them costs nothing more per request.
 */
export function productionGuards(
  config: Pick<Config, 'service' | 'explainDenials' | 'limits' | 'signatureLookup'>,
  policy: PolicyEngine | undefined,
  trust?: { trust: Trust; logger: Logger },
): Guard[] {
  const guards = [manifestLimitsGuard(config.limits)];
  if (trust) {
    const { cacheTTL, timeout } = config.signatureLookup;
    guards.push(
      signaturesGuard({
        ...trust,
        ttlMs: cacheTTL,
        lookupTimeoutMs: timeout,
        tagTtlMs: config.limits.tagLookupTTL,
      }),
    );
  }
  if (policy && policy.requestRules.length > 0) guards.push(requestRulesGuard(policy, config));
  return guards;
}
