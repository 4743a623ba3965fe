import { parse, type ASTNode } from '@marcbachmann/cel-js';
import { PRESET_ISSUERS } from '../identity/presets.js';
import type { Rule } from './types.js';

/**
 * Tenant pinning: GitHub Actions, GitLab.com and Google sign identity tokens for every customer of
 * the public service with the same issuer and keys. An allow rule for such an issuer that never
 * pins the owner (organisation, group, project) grants to anyone who names a repository like ours.
 * This is static analysis of each rule's `when` AST, pure and conservative: a rule is flagged
 * unless every way it can match pins the owner.
 */

/** How firmly a matching rule pins the owner: not at all, by a name someone may register later, by an id. */
export type PinLevel = 'none' | 'name' | 'id';
const LEVELS: PinLevel[] = ['none', 'name', 'id'];
type Level = 0 | 1 | 2;

/** The issuer facts a rule can test: `identity.issuerName`, `identity.issuer`, `identity.preset`. */
export interface LintIssuer {
  name: string;
  issuer: string;
  preset?: string;
}

export interface TenantPinningWarning {
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

interface OwnerClaims {
  /** Immutable ids: equal to a constant, the owner is pinned for good. */
  ids: string[];
  /** Owner names: equal to a constant, pinned by a name that can be freed and registered again. */
  names: string[];
  /** Values that begin with the owner's name (`acme/web`): equal to a constant, or startsWith a constant with an owner segment (`"acme/"`), pinned by name. */
  paths: string[];
  /** Values ending in the tenant's domain (`@project.iam.gserviceaccount.com`): endsWith a constant starting with "@" pins it. */
  domains: string[];
  tenants: string;
  fix: string;
}

/** Presets whose issuer is shared by every tenant of a public service. Claim paths are dotted. */
export const MULTI_TENANT_PRESETS: Readonly<Record<string, OwnerClaims>> = {
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
      warnings.push({ file: rule.file, rule: rule.name, issuer: iss.name, preset: kind, pinned, actions: rule.actions, message: message(rule, iss.name, kind, owner, pinned) });
    }
  }
  return warnings;
}

/** Which multi-tenant service an issuer is: its preset, or (an `--issuer` without preset) the public service's issuer URL. */
function tenancy(iss: LintIssuer): string | undefined {
  if (iss.preset) return MULTI_TENANT_PRESETS[iss.preset] ? iss.preset : undefined;
  return Object.entries(PRESET_ISSUERS).find(([preset, url]) => url === iss.issuer && MULTI_TENANT_PRESETS[preset])?.[0];
}

function message(rule: Rule, issuer: string, kind: string, owner: OwnerClaims, pinned: 'none' | 'name'): string {
  const what = `${rule.file}: rule "${rule.name}" grants [${rule.actions.join(', ')}] to issuer "${issuer}" (${kind})`;
  if (pinned === 'none') {
    return `${what} but never pins the owner: ${owner.tenants} whose names match gets access. Fix: ${owner.fix}; owner names can be re-registered, ids cannot`;
  }
  return `${what} pins the owner by name only: once that name is renamed or deleted, whoever registers it gets access. Fix: also ${owner.fix}; ids cannot be re-registered`;
}

type Truth = 'T' | 'F' | 'U';
/** What is known about a (sub)expression for one issuer: can it be true, and which pin holds whenever it is. */
interface Abstract {
  truth: Truth;
  pin: Level;
}

const UNKNOWN: Abstract = { truth: 'U', pin: 0 };
const IDENTITY_FIELDS: Record<string, (i: LintIssuer) => string> = {
  issuerName: (i) => i.name,
  issuer: (i) => i.issuer,
  preset: (i) => i.preset ?? '',
};

function analyse(node: ASTNode, iss: LintIssuer, owner: OwnerClaims): Abstract {
  switch (node.op) {
    case 'value':
      return node.args === true ? { truth: 'T', pin: 0 } : node.args === false ? { truth: 'F', pin: 0 } : UNKNOWN;
    case '&&': {
      const a = analyse(node.args[0], iss, owner);
      const b = analyse(node.args[1], iss, owner);
      const truth: Truth = a.truth === 'F' || b.truth === 'F' ? 'F' : a.truth === 'T' && b.truth === 'T' ? 'T' : 'U';
      return { truth, pin: Math.max(a.pin, b.pin) as Level };
    }
    case '||':
      return either(analyse(node.args[0], iss, owner), analyse(node.args[1], iss, owner));
    case '!_': {
      const a = analyse(node.args, iss, owner);
      return { truth: a.truth === 'T' ? 'F' : a.truth === 'F' ? 'T' : 'U', pin: 0 };
    }
    case '?:': {
      const [c, a, b] = node.args.map((n) => analyse(n, iss, owner)) as [Abstract, Abstract, Abstract];
      if (c.truth === 'T') return a;
      if (c.truth === 'F') return b;
      // when the condition holds, its pins hold too
      return either({ truth: a.truth, pin: Math.max(c.pin, a.pin) as Level }, b);
    }
    case '==':
    case '!=':
    case 'in':
    case 'rcall':
      return identityTest(node, iss) ?? { truth: 'U', pin: pinOf(node, owner) };
    default:
      return UNKNOWN;
  }
}

/** `a || b` (also the two branches of `?:`): true when either is; only pins both share hold. */
function either(a: Abstract, b: Abstract): Abstract {
  if (a.truth === 'F') return b;
  if (b.truth === 'F') return a;
  return { truth: a.truth === 'T' || b.truth === 'T' ? 'T' : 'U', pin: Math.min(a.pin, b.pin) as Level };
}

function literal(node: ASTNode): string | number | undefined {
  if (node.op !== 'value') return undefined;
  const v = node.args;
  if (typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

function literalList(node: ASTNode): (string | number)[] | undefined {
  if (node.op !== 'list') return undefined;
  const values = node.args.map(literal);
  return values.every((x) => x !== undefined) ? (values as (string | number)[]) : undefined;
}

/** `claims.a.b` / `claims["a"]["b"]` → "a.b"; anything else → undefined. */
function claimPath(node: ASTNode): string | undefined {
  if (node.op === '.' || node.op === '.?') {
    const base = node.args[0].op === 'id' && node.args[0].args === 'claims' ? '' : claimPath(node.args[0]);
    return base === undefined ? undefined : base ? `${base}.${node.args[1]}` : node.args[1];
  }
  if (node.op === '[]' || node.op === '[?]') {
    const key = literal(node.args[1]);
    if (typeof key !== 'string') return undefined;
    const base = node.args[0].op === 'id' && node.args[0].args === 'claims' ? '' : claimPath(node.args[0]);
    return base === undefined ? undefined : base ? `${base}.${key}` : key;
  }
  return undefined;
}

/** `identity.issuerName|issuer|preset` → its value for this issuer. */
function identityValue(node: ASTNode, iss: LintIssuer): string | undefined {
  if ((node.op === '.' || node.op === '.?') && node.args[0].op === 'id' && node.args[0].args === 'identity') {
    return IDENTITY_FIELDS[node.args[1]]?.(iss);
  }
  return undefined;
}

/** Comparisons of the issuer facts with constants are decided per issuer. */
function identityTest(node: ASTNode, iss: LintIssuer): Abstract | undefined {
  const known = (b: boolean): Abstract => ({ truth: b ? 'T' : 'F', pin: 0 });
  if (node.op === '==' || node.op === '!=') {
    const [l, r] = node.args;
    const pair = identityValue(l, iss) !== undefined ? [identityValue(l, iss)!, literal(r)] : [identityValue(r, iss), literal(l)];
    if (pair[0] === undefined || pair[1] === undefined) return undefined;
    return known((pair[0] === pair[1]) === (node.op === '=='));
  }
  if (node.op === 'in') {
    const value = identityValue(node.args[0], iss);
    const list = literalList(node.args[1]);
    return value !== undefined && list ? known(list.includes(value)) : undefined;
  }
  if (node.op === 'rcall') {
    const [fn, target, args] = node.args;
    const value = identityValue(target, iss);
    const arg = args.length === 1 ? literal(args[0]!) : undefined;
    if (value === undefined || typeof arg !== 'string') return undefined;
    if (fn === 'startsWith') return known(value.startsWith(arg));
    if (fn === 'endsWith') return known(value.endsWith(arg));
    if (fn === 'contains') return known(value.includes(arg));
  }
  return undefined;
}

/** The pin a single comparison of an owner claim with constants establishes. */
function pinOf(node: ASTNode, owner: OwnerClaims): Level {
  const claimLevel = (path: string | undefined): Level => (path === undefined ? 0 : owner.ids.includes(path) ? 2 : owner.names.includes(path) || owner.paths.includes(path) ? 1 : 0);
  if (node.op === '==') {
    const [l, r] = node.args;
    if (literal(r) !== undefined) return claimLevel(claimPath(l));
    if (literal(l) !== undefined) return claimLevel(claimPath(r));
    return 0;
  }
  if (node.op === 'in') return literalList(node.args[1]) ? claimLevel(claimPath(node.args[0])) : 0;
  if (node.op === 'rcall') {
    const [fn, target, args] = node.args;
    const path = claimPath(target);
    const arg = args.length === 1 ? literal(args[0]!) : undefined;
    if (path === undefined || typeof arg !== 'string') return 0;
    // "acme/" fixes the owner segment; "acme" alone also matches "acme-evil/…"
    if (fn === 'startsWith' && (owner.paths.includes(path) || owner.names.includes(path)) && arg.includes('/')) return 1;
    if (fn === 'endsWith' && owner.domains.includes(path) && arg.startsWith('@') && arg.length > 1) return 2;
  }
  return 0;
}
