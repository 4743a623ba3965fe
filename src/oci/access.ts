import type { Scope } from './scope.js';

/** One entry of a registry token's `access` claim, exactly as the Docker token-auth spec defines. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** `scope` narrowed to the actions `access` does not grant, or undefined when it grants them all (`*` grants all). */
export function lacking(access: readonly AccessEntry[], scope: Scope): Scope | undefined {
  const granted = new Set<string>();
  for (const a of access) {
    if (a.type === scope.type && a.name === scope.name) for (const act of a.actions) granted.add(act);
  }
  const missing = granted.has('*') ? [] : scope.actions.filter((a) => !granted.has(a));
  return missing.length > 0 ? { ...scope, actions: missing } : undefined;
}

/** True when `access` grants every action of `scope` (`*` grants all). */
export function covers(access: readonly AccessEntry[], scope: Scope): boolean {
  return lacking(access, scope) === undefined;
}
