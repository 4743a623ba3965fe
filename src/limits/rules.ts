import { hash } from 'node:crypto';
import type { LimitRule } from '../config/types.js';
import { isAnonymous } from '../identity/types.js';
import type { CounterSpec } from './store.js';
import type { Charge, KeyFn, LimitSubject } from './types.js';

/** `limits.rules` as counters: pure arithmetic from the config to rate-limiter-flexible's points per duration. */

export interface CounterPlan {
  spec: CounterSpec;
  /** Points a key may spend per window before refusals, and the words for the message. */
  limit: number;
  what: string;
}

/** A rate r/s with a burst b: ceil(r) points per second (or 1 per 1/r s), plus the rest of the burst refilled over b/r seconds. */
function ratePlan(name: string, rate: number, burst: number | undefined): CounterPlan {
  const points = rate >= 1 ? Math.round(rate) : 1;
  const durationS = rate >= 1 ? 1 : Math.round(1 / rate);
  const b = Math.ceil(burst ?? 2 * rate);
  const extra = b - points;
  const spec: CounterSpec = { prefix: `rap:${name}:rate`, points, durationS };
  if (extra > 0) spec.burst = { points: extra, durationS: Math.max(1, Math.ceil(b / rate)) };
  return { spec, limit: Math.max(points, b), what: `${rate} per second, bursts of ${Math.max(points, b)}` };
}

function windowWords(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The counters a rule needs, in order: rate first, then quota. Pure. */
export function counterPlans(rule: LimitRule): CounterPlan[] {
  const plans: CounterPlan[] = [];
  if (rule.rate) plans.push(ratePlan(rule.name, rule.rate, rule.burst));
  if (rule.quota) {
    const { limit, window } = rule.quota;
    plans.push({
      spec: { prefix: `rap:${rule.name}:quota`, points: limit, durationS: Math.max(1, Math.round(window / 1000)) },
      limit,
      what: `${limit} per ${windowWords(window)}`,
    });
  }
  return plans;
}

/** What one request costs under a rule: 1 at /token; at /v2/ by route kind (HEAD is free, as at Docker Hub). Pure. */
export function costOf(rule: LimitRule, charge: Charge): number {
  if (charge.place === 'token') return 1;
  if (charge.method === 'HEAD') return 0;
  if (!rule.costs) return 1;
  return (charge.kind && rule.costs[charge.kind as keyof typeof rule.costs]) || 0;
}

/** The default key: issuer + subject; an anonymous caller is keyed by address. */
export const identityKey: KeyFn = ({ identity, request }: LimitSubject) =>
  isAnonymous(identity) ? `address ${request.clientIP}` : `${identity.issuerName}:${identity.subject}`;

/** The key as stored: hashed, so a long subject costs 22 bytes and the store never holds claims. */
export const storedKey = (key: string): string => hash('sha256', key, 'base64url').slice(0, 22);
