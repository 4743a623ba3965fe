import type { Identity } from '../identity/types.js';
import type { Scope } from '../oci/scope.js';
import type { CelContext } from './cel.js';
import type { Decision, MatchedRule, PolicyEngine, RequestContext, RequestRule, WouldDeny } from './types.js';

/** Every loaded rule carries what its `when` reads; the request-time guard needs it (request.ts). */
export type CompiledRule = RequestRule;

/**
 * Grant = (requested ∩ ⋃ matching allow actions) − ⋃ matching deny actions. No rule, no access.
 * A `when` that fails at run time (a missing claim, a type mismatch) or yields a non-bool does not
 * match an allow rule but DOES match a deny rule: errors fail closed either way.
 * A requested `*` (skopeo asks `repository:R:*` to delete) is literal: granted only by an allow
 * rule listing `*`, and withheld when a matching deny rule removes any action at all.
 */
export function createPolicyEngine(
  rules: CompiledRule[],
  upstreamOf: (repository: string) => string = () => '',
): PolicyEngine {
  const tokenRules = rules.filter((r) => r.phase !== 'request');
  return {
    rules,
    requestRules: rules.filter((r) => r.phase !== 'token'),
    decide(identity: Identity, scope: Scope, context: RequestContext): Decision {
      const ctx = celContext(identity, scope, context, upstreamOf);
      const allowed = new Set<string>();
      const denied = new Set<string>();
      let allowAll = false;
      let denyAll = false;
      const matched: MatchedRule[] = [];
      const audits: CompiledRule[] = [];
      for (const rule of tokenRules) {
        if (!matches(rule, ctx)) continue;
        if (rule.effect === 'audit') {
          audits.push(rule);
          continue;
        }
        matched.push({ name: rule.name, effect: rule.effect, actions: rule.actions, file: rule.file });
        for (const a of rule.actions) {
          if (rule.effect === 'allow') {
            if (a === '*') allowAll = true;
            else allowed.add(a);
          } else if (a === '*') denyAll = true;
          else denied.add(a);
        }
      }
      const granted = scope.actions.filter((a) => {
        if (denyAll || denied.has(a)) return false;
        // `*` stands for every action, so any denied action withholds it
        if (a === '*') return allowAll && denied.size === 0;
        return allowAll || allowed.has(a);
      });
      return {
        scope,
        granted,
        matched,
        wouldDeny: audits.map((r) => wouldDeny(r, granted)).filter((w) => w.actions.length > 0),
      };
    },
  };
}

/** What a matching audit rule would have removed from the grant, were it a deny rule (it is not). Pure. */
function wouldDeny(rule: CompiledRule, granted: readonly string[]): WouldDeny {
  const all = rule.actions.includes('*');
  return { rule: rule.name, actions: granted.filter((a) => all || a === '*' || rule.actions.includes(a)) };
}

/** Deny and audit rules match when their `when` fails (fail closed; an audit rule then records it). */
function matches(rule: CompiledRule, ctx: CelContext): boolean {
  if (!rule.evaluate) return true;
  let result: unknown;
  try {
    result = rule.evaluate(ctx);
  } catch {
    return rule.effect !== 'allow';
  }
  if (typeof result !== 'boolean') return rule.effect !== 'allow';
  return result;
}

/** `claims` and `identity` as every rule sees them, at token and at request time. */
export function identityVars(identity: Identity): Pick<CelContext, 'claims' | 'identity'> {
  return {
    claims: identity.claims,
    identity: {
      issuerName: identity.issuerName,
      issuer: identity.issuer,
      subject: identity.subject,
      preset: identity.preset ?? '',
      namespace: identity.namespace ?? '',
      serviceAccount: identity.serviceAccount ?? '',
      podName: identity.podName ?? '',
    },
  };
}

function celContext(
  identity: Identity,
  scope: Scope,
  context: RequestContext,
  upstreamOf: (repository: string) => string,
): CelContext {
  return {
    ...identityVars(identity),
    request: {
      type: scope.type,
      repository: scope.type === 'repository' ? scope.name : '',
      actions: scope.actions,
      service: context.service,
      clientIP: context.clientIP,
      upstream: scope.type === 'repository' ? upstreamOf(scope.name) : '',
    },
  };
}
