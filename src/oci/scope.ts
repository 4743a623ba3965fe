/**
 * Resource scopes of the Docker token-auth spec: `<type>[(<class>)]:<name>:<action>[,<action>…]`.
 * The name may itself contain ':' (a registry host with a port), so type is split off the left and
 * actions off the right.
 */

export interface Scope {
  /** `repository` or `registry` (any class suffix like `(plugin)` is kept out of here). */
  type: string;
  name: string;
  actions: string[];
}

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

/** OCI distribution-spec repository name grammar, with Distribution's 255-char limit. */
const PATH_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const MAX_REPOSITORY_LENGTH = 255;

export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_RE.test(name);
}

const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
function isValidTag(ref: string): boolean {
  return TAG_RE.test(ref);
}
export function isValidDigest(ref: string): boolean {
  return ref.length <= 256 && DIGEST_RE.test(ref);
}
export function isValidReference(ref: string): boolean {
  return isValidTag(ref) || isValidDigest(ref);
}

const ACTION_RE = /^(?:\*|[a-z][a-z0-9_-]{0,31})$/;
const TYPE_RE = /^([a-z][a-z0-9_-]{0,31})(?:\([a-z0-9_-]{1,32}\))?$/;
const MAX_SCOPE_LENGTH = 1024;

/** Parses one resource scope. Throws ScopeError with a reason a client can act on. */
export function parseScope(input: string): Scope {
  if (input.length === 0) throw new ScopeError('empty scope');
  if (input.length > MAX_SCOPE_LENGTH) throw new ScopeError('scope too long');
  const first = input.indexOf(':');
  const last = input.lastIndexOf(':');
  if (first < 0 || first === last) throw new ScopeError(`scope "${truncate(input)}" is not <type>:<name>:<actions>`);
  const typePart = input.slice(0, first);
  const name = input.slice(first + 1, last);
  const actionPart = input.slice(last + 1);
  const tm = TYPE_RE.exec(typePart);
  if (!tm) throw new ScopeError(`scope type "${truncate(typePart)}" is invalid`);
  const type = tm[1]!;
  const actions = actionPart === '' ? [] : actionPart.split(',');
  for (const a of actions) {
    if (!ACTION_RE.test(a)) throw new ScopeError(`scope action "${truncate(a)}" is invalid`);
  }
  if (type === 'repository') {
    if (!isValidRepositoryName(name)) throw new ScopeError(`repository name "${truncate(name)}" is invalid`);
  } else if (type === 'registry') {
    if (name !== 'catalog') throw new ScopeError(`registry scope name must be "catalog"`);
  } else if (name.length === 0 || /[\s"\\]/.test(name)) {
    throw new ScopeError(`scope name "${truncate(name)}" is invalid`);
  }
  return { type, name, actions: dedupe(actions) };
}

/**
 * Parses a space-separated list (containerd sends every scope in one `scope` parameter). Repository
 * names are given their canonical form first (`hub/nginx` → `hub/library/nginx`), so two spellings
 * of one repository merge and are decided as the one name the proxy judges requests by.
 */
export function parseScopes(values: string[], canonical: (repository: string) => string = (n) => n): Scope[] {
  const out: Scope[] = [];
  for (const value of values) {
    for (const part of value.split(' ')) {
      if (part.length > 0) out.push(canonicalScope(parseScope(part), canonical));
    }
  }
  return mergeScopes(out);
}

function canonicalScope(s: Scope, canonical: (repository: string) => string): Scope {
  if (s.type !== 'repository') return s;
  const name = canonical(s.name);
  if (name === s.name) return s;
  if (!isValidRepositoryName(name)) throw new ScopeError(`repository name "${truncate(name)}" is invalid`);
  return { ...s, name };
}

export function formatScope(s: Scope): string {
  return `${s.type}:${s.name}:${s.actions.join(',')}`;
}

/** Merges scopes naming the same resource, keeping first-seen order. */
function mergeScopes(scopes: Scope[]): Scope[] {
  const byKey = new Map<string, Scope>();
  for (const s of scopes) {
    const key = `${s.type}:${s.name}`;
    const prev = byKey.get(key);
    if (prev) prev.actions = dedupe([...prev.actions, ...s.actions]);
    else byKey.set(key, { type: s.type, name: s.name, actions: [...s.actions] });
  }
  return [...byKey.values()];
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

/** One key for a set of scopes, whatever their order (caches of upstream tokens per scope set). Pure. */
export function scopeSetKey(scopes: Scope[]): string {
  return scopes.map(formatScope).sort().join(' ');
}
