import type { ASTNode } from '@marcbachmann/cel-js';

/**
 * The abstract interpretation behind the tenant-pinning lint (`lint.ts`): what a rule's `when` AST
 * proves, for one issuer, about whether it can match and which owner pin holds whenever it does.
 * Pure and conservative: anything it cannot read is "unknown" and pins nothing.
 */

/** 0: the owner is not pinned; 1: pinned by a name someone may register later; 2: pinned by an id. */
export type Level = 0 | 1 | 2;

/** The issuer facts a rule can test: `identity.issuerName`, `identity.issuer`, `identity.preset`. */
export interface LintIssuer {
  name: string;
  issuer: string;
  preset?: string;
}

export interface OwnerClaims {
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

type Truth = 'T' | 'F' | 'U';
/** What is known about a (sub)expression for one issuer: can it be true, and which pin holds whenever it is. */
export interface Abstract {
  truth: Truth;
  pin: Level;
}

const UNKNOWN: Abstract = { truth: 'U', pin: 0 };
const IDENTITY_FIELDS: Record<string, (i: LintIssuer) => string> = {
  issuerName: (i) => i.name,
  issuer: (i) => i.issuer,
  preset: (i) => i.preset ?? '',
};

/** What `node` proves for `iss`; `owner` names the claims that identify the tenant. */
export function analyse(node: ASTNode, iss: LintIssuer, owner: OwnerClaims): Abstract {
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
    const pair =
      identityValue(l, iss) !== undefined ? [identityValue(l, iss)!, literal(r)] : [identityValue(r, iss), literal(l)];
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
  const claimLevel = (path: string | undefined): Level =>
    path === undefined
      ? 0
      : owner.ids.includes(path)
        ? 2
        : owner.names.includes(path) || owner.paths.includes(path)
          ? 1
          : 0;
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
    if (fn === 'startsWith' && (owner.paths.includes(path) || owner.names.includes(path)) && arg.includes('/'))
      return 1;
    if (fn === 'endsWith' && owner.domains.includes(path) && arg.startsWith('@') && arg.length > 1) return 2;
  }
  return 0;
}
