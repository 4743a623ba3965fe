import { identityVars } from './engine.js';
import { policyEnvironment, type CelContext } from './cel.js';
import type { KeyFn, LimitSubject } from '../limits/types.js';

/**
 * A `limits.rules[].key` expression, compiled once at start-up against the policies' CEL
 * environment (so `identity.namespce` fails then, not per request). The key is what the expression
 * gives as a string; anything else (an error, a non-string, '') leaves the request uncounted by
 * that rule, as the rule's `upstreams` would.
 */
class LimitKeyError extends Error {
  constructor(rule: string, problem: string) {
    super(`limits.rules "${rule}": key: ${problem}`);
    this.name = 'LimitKeyError';
  }
}

/** The variables a key sees: the identity as every policy rule sees it (engine.ts), and the request. */
function celContext({ identity, request }: LimitSubject): CelContext {
  return { ...identityVars(identity), request };
}

export function compileLimitKey(rule: string, expression: string): KeyFn {
  const env = policyEnvironment();
  const checked = env.check(expression);
  if (!checked.valid) throw new LimitKeyError(rule, `invalid CEL: ${checked.error?.message ?? 'type check failed'}`);
  if (checked.type !== 'string' && checked.type !== 'dyn')
    throw new LimitKeyError(rule, `must evaluate to a string, not ${checked.type}`);
  const evaluate = env.parse(expression) as unknown as (ctx: CelContext) => unknown;
  return (subject) => {
    try {
      const key = evaluate(celContext(subject));
      return typeof key === 'string' && key !== '' ? key : undefined;
    } catch {
      return undefined;
    }
  };
}
