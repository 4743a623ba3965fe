import { hash } from 'node:crypto';
import type { Rule } from './types.js';

/**
 * Which policies decided: a digest of the rules as evaluated (name, effect, actions, phase, when, in
 * order), not of the files, so the same policies checked out elsewhere or reformatted digest the
 * same. The decision log records it; `policy replay` says when it replays other policies. Pure.
 */
export function policyDigest(rules: readonly Rule[]): string {
  const canonical = rules.map((r) => [r.name, r.effect, r.actions, r.phase, r.when ?? null]);
  return `sha256:${hash('sha256', JSON.stringify(canonical))}`;
}
