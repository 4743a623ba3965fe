import type { Identity } from '../identity/types.js';
import type { Scope } from '../oci/scope.js';

export type Effect = 'allow' | 'deny';

export interface Rule {
  name: string;
  effect: Effect;
  /** Actions this rule grants or removes; `*` means every action. */
  actions: string[];
  /** The CEL source of `when` (absent: always matches). */
  when?: string;
  /** File the rule came from (for errors and `policy test`). */
  file: string;
}

export interface RequestContext {
  service: string;
  clientIP: string;
}

export interface MatchedRule {
  name: string;
  effect: Effect;
  actions: string[];
  file: string;
}

export interface Decision {
  scope: Scope;
  /** (requested ∩ allowed) − denied, in the requested order. */
  granted: string[];
  matched: MatchedRule[];
}

export interface PolicyEngine {
  readonly rules: readonly Rule[];
  decide(identity: Identity, scope: Scope, context: RequestContext): Decision;
}
