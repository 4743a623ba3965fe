import type { Identity } from '../identity/types.js';
import type { AccessEntry } from '../oci/access.js';
import type { Scope } from '../oci/scope.js';
import { grantResult, refusalOf, type GrantResult, type Refusal } from './explain.js';
import type { Decision, PolicyEngine, RequestContext } from './types.js';

/** What the policy grants one identity of the scopes it asked for, in every form a caller needs. */
export interface Grant {
  /** One decision per requested scope, in order. */
  decisions: Decision[];
  /** The granted actions, per scope, as a registry token's `access` claim (scopes granted nothing are left out). */
  access: AccessEntry[];
  /** What was refused, and why (the registry token's `refused` claim). */
  refused: Refusal[];
  /** Names of every rule that matched any scope, once each. */
  matched: string[];
  /** granted | partial | denied: the audit line's and the metric's vocabulary. */
  result: GrantResult;
  /** `effect: audit` rules that matched, per scope: what they would have denied (the grant is unchanged). */
  wouldDeny: { rule: string; scope: string; actions: string[] }[];
}

/**
 * The policy's grant for `scopes`: the one loop over the policy, shared by the token endpoint,
 * anonymous access, the catalog filter and `policy test`. Pure (the policy is). `ruleNames`: whether
 * refusals name the deny rules (they travel inside tokens, so only when the operator allows it).
 */
export function grant(
  policy: PolicyEngine,
  identity: Identity,
  scopes: readonly Scope[],
  context: RequestContext,
  opts: { ruleNames?: boolean } = {},
): Grant {
  const decisions = scopes.map((scope) => policy.decide(identity, scope, context));
  const access: AccessEntry[] = [];
  const refused: Refusal[] = [];
  const matched = new Set<string>();
  const wouldDeny: Grant['wouldDeny'] = [];
  for (const decision of decisions) {
    const { scope } = decision;
    for (const w of decision.wouldDeny)
      wouldDeny.push({ rule: w.rule, scope: `${scope.type}:${scope.name}`, actions: w.actions });
    for (const m of decision.matched) matched.add(m.name);
    if (decision.granted.length > 0) access.push({ type: scope.type, name: scope.name, actions: decision.granted });
    const r = refusalOf(decision, { ruleNames: opts.ruleNames ?? false });
    if (r) refused.push(r);
  }
  return { decisions, access, refused, matched: [...matched], result: grantResult(decisions), wouldDeny };
}

/** True when the policy grants `identity` every action of `scope`. */
export function allows(policy: PolicyEngine, identity: Identity, scope: Scope, context: RequestContext): boolean {
  return grant(policy, identity, [scope], context).result === 'granted';
}
