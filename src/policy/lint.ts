import { parse, type ASTNode } from '@marcbachmann/cel-js';
import { PRESET_ISSUERS } from '../config/presets.js';
import { analyse, type Abstract, type LintIssuer, type OwnerClaims } from './owner-pin.js';
import { unguardedReads } from './reads.js';
import type { Rule } from './types.js';

/**
 * Tenant pinning: GitHub Actions, GitLab.com and Google sign identity tokens for every customer of
 * the public service with the same issuer and keys. An allow rule for such an issuer that never
 * pins the owner (organisation, group, project) grants to anyone who names a repository like ours.
 * This is static analysis of each rule's `when` AST, pure and conservative: a rule is flagged
 * unless every way it can match pins the owner. The analysis itself is in `owner-pin.ts`.
 */

/** How firmly a matching rule pins the owner: not at all, by a name someone may register later, by an id. */
type PinLevel = 'none' | 'name' | 'id';
const LEVELS: PinLevel[] = ['none', 'name', 'id'];

export type { LintIssuer };

interface TenantPinningWarning {
  file: string;
  rule: string;
  issuer: string;
  preset: string;
  /** The strongest pin every matching path of the rule carries (never `id`). */
  pinned: Exclude<PinLevel, 'id'>;
  actions: string[];
  /** One line: what is wrong and the fix. */
  message: string;
}

/** Presets whose issuer is shared by every tenant of a public service. Claim paths are dotted. */
const MULTI_TENANT_PRESETS: Readonly<Record<string, OwnerClaims>> = {
  'github-actions': {
    ids: ['repository_owner_id', 'repository_id', 'enterprise_id'],
    names: ['repository_owner', 'enterprise'],
    paths: ['repository', 'sub', 'job_workflow_ref', 'workflow_ref'],
    domains: [],
    tenants: 'any github.com organisation or user',
    fix: 'require claims.repository_owner_id == "<owner id>" (gh api orgs/<org> --jq .id)',
  },
  gitlab: {
    ids: ['namespace_id', 'project_id'],
    names: ['namespace_path'],
    paths: ['project_path', 'sub'],
    domains: [],
    tenants: 'any gitlab.com group or user',
    fix: 'require claims.namespace_id == "<group id>" (the group\'s overview page shows it)',
  },
  google: {
    ids: ['google.compute_engine.project_id', 'google.compute_engine.project_number', 'sub', 'azp', 'email'],
    names: ['hd'],
    paths: [],
    domains: ['email'],
    tenants: 'any Google account or Google Cloud project',
    fix: 'require claims.google.compute_engine.project_id == "<project>" or claims.email == "<service account>"',
  },
};

/** Warnings for every allow rule that may apply to a multi-tenant issuer without pinning the owner by id. */
export function lintTenantPinning(rules: readonly Rule[], issuers: readonly LintIssuer[]): TenantPinningWarning[] {
  const warnings: TenantPinningWarning[] = [];
  for (const rule of rules) {
    if (rule.effect !== 'allow') continue;
    let ast: ASTNode | undefined;
    if (rule.when !== undefined) {
      try {
        ast = parse(rule.when).ast;
      } catch {
        continue; // cannot happen for a loaded rule: load.ts type-checks every `when`
      }
    }
    for (const iss of issuers) {
      const kind = tenancy(iss);
      if (!kind) continue;
      const owner = MULTI_TENANT_PRESETS[kind]!;
      const result: Abstract = ast ? analyse(ast, iss, owner) : { truth: 'T', pin: 0 };
      if (result.truth === 'F' || result.pin === 2) continue;
      const pinned = LEVELS[result.pin] as 'none' | 'name';
      warnings.push({
        file: rule.file,
        rule: rule.name,
        issuer: iss.name,
        preset: kind,
        pinned,
        actions: rule.actions,
        message: message(rule, iss.name, kind, owner, pinned),
      });
    }
  }
  return warnings;
}

/** Which multi-tenant service an issuer is: its preset, or (an `--issuer` without preset) the public service's issuer URL. */
function tenancy(iss: LintIssuer): string | undefined {
  if (iss.preset) return MULTI_TENANT_PRESETS[iss.preset] ? iss.preset : undefined;
  return Object.entries(PRESET_ISSUERS).find(
    ([preset, url]) => url === iss.issuer && MULTI_TENANT_PRESETS[preset],
  )?.[0];
}

function message(rule: Rule, issuer: string, kind: string, owner: OwnerClaims, pinned: 'none' | 'name'): string {
  const what = `${rule.file}: rule "${rule.name}" grants [${rule.actions.join(', ')}] to issuer "${issuer}" (${kind})`;
  if (pinned === 'none') {
    return `${what} but never pins the owner: ${owner.tenants} whose names match gets access. Fix: ${owner.fix}; owner names can be re-registered, ids cannot`;
  }
  return `${what} pins the owner by name only: once that name is renamed or deleted, whoever registers it gets access. Fix: also ${owner.fix}; ids cannot be re-registered`;
}

interface AbsentFactWarning {
  file: string;
  rule: string;
  /** `request.tag` / `request.digest`, read without has(). */
  fields: string[];
  message: string;
}

/**
 * Request-time rules that read `request.tag` / `request.digest` without ever testing `has()` of it:
 * on a request without that reference (a blob upload, a pull by digest) the read is an error and
 * the deny rule refuses, which is rarely what the author meant. Not an error: a rule may mean it.
 */
export function lintAbsentFacts(rules: readonly Rule[]): AbsentFactWarning[] {
  const warnings: AbsentFactWarning[] = [];
  for (const rule of rules) {
    if (rule.phase === 'token' || rule.when === undefined) continue;
    let fields: string[];
    try {
      fields = unguardedReads(parse(rule.when).ast);
    } catch {
      continue; // cannot happen for a loaded rule: load.ts type-checks every `when`
    }
    if (fields.length === 0) continue;
    const guard = fields.map((f) => `has(${f})`).join(' && ');
    warnings.push({
      file: rule.file,
      rule: rule.name,
      fields,
      message: `${rule.file}: rule "${rule.name}" reads ${fields.join(', ')} without has(): on a request that has no ${fields.map((f) => f.slice('request.'.length)).join(' or ')} the read is an error and the rule refuses it (fail closed). Fix: start \`when\` with ${guard} && …`,
    });
  }
  return warnings;
}
