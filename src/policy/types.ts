import type { Identity } from '../identity/types.js';
import type { Scope } from '../oci/scope.js';
import type { CompiledWhen } from './cel.js';
import type { LazyReads } from './reads.js';

/** `audit`: evaluated like deny but only recorded ("would deny"), never changing a grant. */
export type Effect = 'allow' | 'deny' | 'audit';

/**
 * When a rule is evaluated (CONTRACT §6 `phase`): when /token grants (`token`, the default), on each
 * `/v2/` request (`request`), or both (`both`, an extension of the contract: one deny rule for both).
 */
export type RulePhase = 'token' | 'request' | 'both';

export interface Rule {
  name: string;
  effect: Effect;
  /** Actions this rule grants or removes; `*` means every action. */
  actions: string[];
  /** The CEL source of `when` (absent: always matches). */
  when?: string;
  /** When the rule applies (default `token`). */
  phase: RulePhase;
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
  /** `effect: audit` rules that matched, and the granted actions they would have removed (none was). */
  wouldDeny: WouldDeny[];
}

export interface WouldDeny {
  rule: string;
  actions: string[];
}

/** A deny rule evaluated on `/v2/` requests (`phase: request | both`), compiled. */
export interface RequestRule extends Rule {
  evaluate?: CompiledWhen;
  /** The on-demand inputs its `when` reads (upstream facts, the pushed manifest's digest). */
  reads: LazyReads;
}

export interface PolicyEngine {
  readonly rules: readonly Rule[];
  /** The rules the request-time guard evaluates, in policy order (request.ts). */
  readonly requestRules: readonly RequestRule[];
  decide(identity: Identity, scope: Scope, context: RequestContext): Decision;
}
