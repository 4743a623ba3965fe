import { identityVars } from './engine.js';
import { limitEnvironment } from './cel.js';
import type { KeyFn, LimitSubject, MatchFn } from '../limits/types.js';

/**
 * `limits.rules[].key` and `match` expressions, compiled once at start-up against the limits' CEL
 * environment (so `identity.namespce` or `upstream.digest` fails then, not per request). A key is
 * what the expression gives as a string; anything else (an error, a non-string, '') leaves the
 * request uncounted by that rule. A match counts the request only when it gives true.
 */
class LimitRuleError extends Error {
  constructor(rule: string, field: string, problem: string) {
    super(`limits.rules "${rule}": ${field}: ${problem}`);
    this.name = 'LimitRuleError';
  }
}

/** The variables an expression sees: the identity as every policy rule sees it (engine.ts), and the request. */
function celContext({ identity, request }: LimitSubject) {
  return { ...identityVars(identity), request };
}

function compile(rule: string, field: 'key' | 'match', expression: string, type: 'string' | 'bool') {
  const env = limitEnvironment();
  const checked = env.check(expression);
  if (!checked.valid)
    throw new LimitRuleError(rule, field, `invalid CEL: ${checked.error?.message ?? 'type check failed'}`);
  if (checked.type !== type && checked.type !== 'dyn')
    throw new LimitRuleError(rule, field, `must evaluate to a ${type}, not ${checked.type}`);
  const evaluate = env.parse(expression) as unknown as (ctx: ReturnType<typeof celContext>) => unknown;
  return (subject: LimitSubject): unknown => {
    try {
      return evaluate(celContext(subject));
    } catch {
      return undefined;
    }
  };
}

export function compileLimitKey(rule: string, expression: string): KeyFn {
  const evaluate = compile(rule, 'key', expression, 'string');
  return (subject) => {
    const key = evaluate(subject);
    return typeof key === 'string' && key !== '' ? key : undefined;
  };
}

export function compileLimitMatch(rule: string, expression: string): MatchFn {
  const evaluate = compile(rule, 'match', expression, 'bool');
  return (subject) => evaluate(subject) === true;
}
