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

/** The on-demand inputs among `inputs` (from requestTimeInputs). */
export function lazyReads(inputs: readonly string[]): LazyReads {
  return {
    tagExists: inputs.includes('upstream.tagExists'),
    digest: inputs.includes('upstream.digest'),
    bodyDigest: inputs.includes('request.bodyDigest') || inputs.includes(`request${DYNAMIC}`),
  };
}
