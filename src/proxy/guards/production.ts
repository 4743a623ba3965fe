import type { Config } from '../../config/types.js';
import type { PolicyEngine } from '../../policy/types.js';
import type { Guard } from '../guards.js';
import { manifestLimitsGuard } from './manifest-limits.js';
import { requestRulesGuard } from './request-rules.js';

/**
 * The guards every proxied request passes, in order: manifest size and type limits (which may read a
 * chunked manifest, capped), then the policy's request-time rules — present only when the policy has
 * some, so a policy without them costs nothing more per request.
 */
export function productionGuards(config: Pick<Config, 'service' | 'explainDenials' | 'limits'>, policy: PolicyEngine | undefined): Guard[] {
  const guards = [manifestLimitsGuard(config.limits)];
  if (policy && policy.requestRules.length > 0) guards.push(requestRulesGuard(policy, config));
  return guards;
}
