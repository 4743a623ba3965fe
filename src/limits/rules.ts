import { hash } from 'node:crypto';
import type { LimitRule } from '../config/types.js';
import { isAnonymous } from '../identity/types.js';
import type { CounterSpec } from './store.js';
import type { KeyFn, LimitSubject } from './types.js';

/**
 * `limits.rules[].rate` as counters: pure arithmetic from `{per, count, burst}` to
 * rate-limiter-flexible's points per duration. rate-limiter-flexible has no token bucket, so a
 * rate is two fixed-window counters a request must both pass:
 * - the window: `count` points per `per` — never more than count in one window (a quota, as Docker
 *   Hub's "100 pulls per 6 h" is meant);
 * - the pace, when burst < count: `burst` points per `per × burst / count` — at most burst at once,
 *   the rest of count spread over the window.
 * `{per: 1h, count: 60, burst: 10}`: 10 at once, 10 more every 10 minutes, 60 in the hour at most.
 * Stores count whole seconds (Redis EXPIRE): a pace slice under a second becomes one second holding
 * a second's worth of the rate.
 */

export interface CounterPlan {
  spec: CounterSpec;
  /** Points a key may spend per window before refusals. */
  limit: number;
  /** The window (count per per), whose headroom the RateLimit headers report; else the pace. */
  window: boolean;
  /** The limit in words, for the message. */
  what: string;
}

/** `3600000` → `1h`, `90000` → `90s`. */
function inUnits(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/** The counters of a rule: the window, then the pace when burst < count. Pure. */
export function counterPlans(rule: LimitRule): CounterPlan[] {
  const { per, count, burst = count } = rule.rate;
  const perS = Math.max(1, Math.round(per / 1000));
  const whole = `${count} per ${inUnits(perS * 1000)}`;
  const plans: CounterPlan[] = [
    {
      spec: { prefix: `rap:${rule.name}:w`, points: count, durationS: perS },
      limit: count,
      window: true,
      what: burst < count ? `${whole}, bursts of ${burst}` : whole,
    },
  ];
  if (burst >= count) return plans;
  const paceS = Math.max(1, Math.round((perS * burst) / count));
  const points = Math.max(burst, Math.ceil((count * paceS) / perS));
  plans.push({
    spec: { prefix: `rap:${rule.name}:b`, points, durationS: paceS },
    limit: points,
    window: false,
    what: `${whole}, at most ${points} per ${inUnits(paceS * 1000)}`,
  });
  return plans;
}

/** HEAD requests at /v2/ never count (Docker Hub does not count them either: clients HEAD before a pull). Pure. */
export const counts = (subject: LimitSubject): boolean =>
  subject.request.kind === 'token' || subject.request.method !== 'HEAD';

/** The default key: issuer + subject; an anonymous caller is keyed by address. */
export const identityKey: KeyFn = ({ identity, request }: LimitSubject) =>
  isAnonymous(identity) ? `address ${request.clientIP}` : `${identity.issuerName}:${identity.subject}`;

/** The key as stored: hashed, so a long subject costs 22 bytes and the store never holds claims. */
export const storedKey = (key: string): string => hash('sha256', key, 'base64url').slice(0, 22);
