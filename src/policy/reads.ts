import type { ASTNode } from '@marcbachmann/cel-js';
import { REQUEST_ONLY_FIELDS, UPSTREAM_FIELDS } from './cel.js';

/**
 * Which request-time inputs a `when` reads, from its AST (pure). Load-time uses it to reject a rule
 * that could never be evaluated (a token-time rule reading `request.method`), and the guard to ask
 * the upstream or hash a body only when some rule reads the answer.
 */

/** The inputs a guard fetches or computes on demand. */
export interface LazyReads {
  tagExists: boolean;
  digest: boolean;
  bodyDigest: boolean;
}

export const NO_LAZY_READS: LazyReads = Object.freeze({ tagExists: false, digest: false, bodyDigest: false });

const REQUEST_ONLY = new Set(Object.keys(REQUEST_ONLY_FIELDS));
const UPSTREAM = Object.keys(UPSTREAM_FIELDS);

/** The field a select (`x.f`, `x.?f`, `x["f"]`) names on the variable `variable`, if it is one. */
function selected(node: ASTNode, variable: string): string | undefined {
  if (node.op === '.' || node.op === '.?') {
    const [base, field] = node.args;
    return base.op === 'id' && base.args === variable ? field : undefined;
  }
  if (node.op === '[]' || node.op === '[?]') {
    const [base, key] = node.args;
    if (base.op !== 'id' || base.args !== variable) return undefined;
    return key.op === 'value' && typeof key.args === 'string' ? key.args : DYNAMIC;
  }
  return undefined;
}

/** A field chosen by an expression (`request[k]`): it may be any of them. */
const DYNAMIC = '[…]';

const isNode = (x: unknown): x is ASTNode =>
  typeof x === 'object' && x !== null && typeof (x as { op?: unknown }).op === 'string';

/** Every AST node directly below `node` (operand lists, map entries, call arguments). */
function children(node: ASTNode): ASTNode[] {
  const out: ASTNode[] = [];
  const visit = (x: unknown): void => {
    if (isNode(x)) out.push(x);
    else if (Array.isArray(x)) x.forEach(visit);
  };
  if (node.op !== 'value' && node.op !== 'id') visit(node.args);
  return out;
}

/**
 * The request-time inputs `ast` reads, as users write them (`request.method`, `upstream.tagExists`),
 * sorted. `upstream` alone (not one of its fields) reads every upstream fact.
 */
export function requestTimeInputs(ast: ASTNode): string[] {
  const found = new Set<string>();
  const walk = (node: ASTNode): void => {
    const onRequest = selected(node, 'request');
    if (onRequest !== undefined) {
      if (onRequest === DYNAMIC) found.add(`request${DYNAMIC}`);
      else if (REQUEST_ONLY.has(onRequest)) found.add(`request.${onRequest}`);
      return;
    }
    const onUpstream = selected(node, 'upstream');
    if (onUpstream !== undefined && onUpstream !== DYNAMIC) {
      found.add(`upstream.${onUpstream}`);
      return;
    }
    if (onUpstream !== undefined || (node.op === 'id' && node.args === 'upstream')) {
      for (const f of UPSTREAM) found.add(`upstream.${f}`);
      return;
    }
    const onImage = selected(node, 'image');
    if (onImage !== undefined || (node.op === 'id' && node.args === 'image')) {
      found.add(onImage === undefined || onImage === DYNAMIC ? 'image' : `image.${onImage}`);
      return;
    }
    children(node).forEach(walk);
  };
  walk(ast);
  return [...found].sort();
}

/**
 * The on-demand inputs among `inputs` (from requestTimeInputs). `bodyDigest`: the pushed manifest's
 * digest, which a manifest PUT's `request.digest` is (hashed only when a rule reads it).
 */
export function lazyReads(inputs: readonly string[]): LazyReads {
  return {
    tagExists: inputs.includes('upstream.tagExists'),
    digest: inputs.includes('upstream.digest'),
    bodyDigest: inputs.includes('request.digest') || inputs.includes(`request${DYNAMIC}`),
  };
}

/** Fields that were renamed or removed, and what to write instead (load.ts names them in its error). */
export const REPLACED_FIELDS: Readonly<Record<string, string>> = {
  'request.bodyDigest':
    "request.digest (on a manifest PUT it is the pushed manifest's digest; guard it with has(request.digest) where it may be absent)",
};

/** The replaced fields `ast` reads (`request.bodyDigest`), as users write them. Pure. */
export function replacedReads(ast: ASTNode): string[] {
  const found = new Set<string>();
  const walk = (node: ASTNode): void => {
    const field = selected(node, 'request');
    if (field !== undefined && `request.${field}` in REPLACED_FIELDS) found.add(`request.${field}`);
    children(node).forEach(walk);
  };
  walk(ast);
  return [...found].sort();
}

/** The request fields that are absent on some requests (cel.ts): reading one needs has() first. */
const MAYBE_ABSENT = new Set(['tag', 'digest']);

/** The field `has(request.f)` tests, if `node` is that. */
function hasOf(node: ASTNode): string | undefined {
  if (node.op !== 'call' || !Array.isArray(node.args) || node.args[0] !== 'has') return undefined;
  const arg = (node.args[1] as unknown[] | undefined)?.[0];
  return isNode(arg) && arg.op === '.' ? selected(arg, 'request') : undefined;
}

/** Whether `node` is `request.<field> == "<value>"` (either way round). */
function isEq(node: ASTNode, field: string, value: string): boolean {
  if (node.op !== '==') return false;
  const [l, r] = node.args as [ASTNode, ASTNode];
  const is = (a: ASTNode, b: ASTNode) => selected(a, 'request') === field && b.op === 'value' && b.args === value;
  return is(l, r) || is(r, l);
}

const conjuncts = (node: ASTNode): ASTNode[] =>
  node.op === '&&' ? (node.args as ASTNode[]).flatMap(conjuncts) : [node];

const MANIFEST = 'kind == manifest';
const PUT = 'method == PUT';

/**
 * What the conjuncts of one `&&` chain establish for the others, added to what enclosing chains did:
 * has(request.f); a tag only a manifest request has; a manifest PUT always has a digest.
 */
function established(conj: readonly ASTNode[], outer: ReadonlySet<string>): Set<string> {
  const out = new Set(outer);
  for (const c of conj) {
    const has = hasOf(c);
    if (has !== undefined) out.add(has);
    if (has === 'tag' || isEq(c, 'kind', 'manifest')) out.add(MANIFEST);
    if (isEq(c, 'method', 'PUT')) out.add(PUT);
  }
  if (out.has(MANIFEST) && out.has(PUT)) out.add('digest');
  return out;
}

/**
 * `request.tag` / `request.digest` read (`request.tag == "x"`) where nothing guarantees them: on a
 * request without that reference the read is an evaluation error, and a deny rule then refuses
 * (fail closed) — a rule over tags would refuse every blob upload and digest pull its actions cover.
 * A read is guarded by a conjunct of the same `&&` chain (CEL's `&&` absorbs an error when the other
 * side is false, whichever side), or of an enclosing one: `has(request.f)`, or for `digest`
 * `request.method == "PUT"` with `request.kind == "manifest"` or `has(request.tag)` (a manifest PUT
 * always has one). A `has()` of the field anywhere else
 * (`!has(request.tag) || …`, a ternary) counts as guarding it too. Pure.
 */
export function unguardedReads(ast: ASTNode): string[] {
  const tested = new Set<string>();
  const read = new Set<string>();
  const walk = (node: ASTNode, guarded: ReadonlySet<string>): void => {
    const has = hasOf(node);
    if (has !== undefined) return void tested.add(has);
    if (node.op === '&&') {
      const all = conjuncts(node);
      const inner = established(all, guarded);
      return all.forEach((c) => walk(c, inner));
    }
    const field = node.op === '.' || node.op === '[]' ? selected(node, 'request') : undefined;
    if (field !== undefined && MAYBE_ABSENT.has(field) && !guarded.has(field)) read.add(field);
    children(node).forEach((c) => walk(c, guarded));
  };
  walk(ast, new Set());
  return [...read].filter((f) => !tested.has(f)).map((f) => `request.${f}`);
}
