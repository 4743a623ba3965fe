import { formatScope, isValidDigest, type Scope } from '../oci/scope.js';
import type { RequestFacts, RequestRefusal } from './request.js';
import type { Decision } from './types.js';

/**
 * Why a requester was refused, in words the client prints. Pure functions: the token endpoint
 * records refusals when it decides (they travel inside the registry token it signs), and the
 * proxy turns them into the 403 message when a request needs a refused action.
 */

/** One refused action; `deniedBy`: the deny rules that removed it (absent or empty: no allow rule grants it). */
export interface RefusedAction {
  action: string;
  deniedBy?: string[];
}

/** What one decision refused of a requested scope: requested − granted, with the reasons. */
export interface Refusal {
  type: string;
  name: string;
  actions: RefusedAction[];
}

/** Who was refused: the registry token's `sub` is `<issuerName>:<subject>` (issuer names have no `:`). */
interface Requester {
  issuerName: string;
  subject: string;
}

export type GrantResult = 'granted' | 'partial' | 'denied';

/** Distribution's own wording: what clients print when the operator turned the detail off. */
export const GENERIC_DENIAL = 'requested access to the resource is denied';

/** The refused part of a decision, or undefined when everything requested was granted. */
export function refusalOf(decision: Decision, opts: { ruleNames: boolean }): Refusal | undefined {
  const { scope, granted, matched } = decision;
  const refused = scope.actions.filter((a) => !granted.includes(a));
  if (refused.length === 0) return undefined;
  const denyRules = matched.filter((m) => m.effect === 'deny');
  return {
    type: scope.type,
    name: scope.name,
    actions: refused.map((action) => {
      // A requested `*` is withheld by any deny rule that removes anything (engine.ts).
      const by = denyRules
        .filter((r) => action === '*' || r.actions.includes(action) || r.actions.includes('*'))
        .map((r) => r.name);
      return opts.ruleNames && by.length > 0 ? { action, deniedBy: [...new Set(by)] } : { action };
    }),
  };
}

/** `granted` (every requested action, also when none was requested), `denied` (none), else `partial`. */
export function grantResult(decisions: Pick<Decision, 'scope' | 'granted'>[]): GrantResult {
  const requested = decisions.reduce((n, d) => n + d.scope.actions.length, 0);
  const granted = decisions.reduce((n, d) => n + d.granted.length, 0);
  if (granted >= requested) return 'granted';
  return granted === 0 ? 'denied' : 'partial';
}

/**
 * The refusals that explain every missing action of `missing` (scopes holding only the actions a
 * request needs and its token lacks), narrowed to those actions; undefined when some missing action
 * was never asked for — the client should then fetch a token for it (401 insufficient_scope).
 */
export function refusalsFor(missing: Scope[], refusals: readonly Refusal[]): Refusal[] | undefined {
  const out: Refusal[] = [];
  for (const need of missing) {
    const recorded = refusals.filter((r) => r.type === need.type && r.name === need.name).flatMap((r) => r.actions);
    const actions: RefusedAction[] = [];
    for (const action of need.actions) {
      // `*` was refused: so is any single action (skopeo delete asks for `*`, then GETs and DELETEs).
      const hit = recorded.find((r) => r.action === action) ?? recorded.find((r) => r.action === '*');
      if (!hit) return undefined;
      if (!actions.some((a) => a.action === hit.action)) actions.push(hit);
    }
    out.push({ type: need.type, name: need.name, actions });
  }
  return out;
}

/** Printable ASCII, bounded: a subject comes from an identity token and is echoed to a terminal. */
function printable(s: string, max = 200): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

const label = (action: string): string => (action === '*' ? '* (every action)' : action);

function why(r: Refusal): string {
  const unmatched = r.actions.filter((a) => !a.deniedBy?.length).map((a) => a.action);
  const parts: string[] = [];
  if (unmatched.length) parts.push(`no rule grants ${unmatched.join(', ')}`);
  for (const a of r.actions.filter((x) => x.deniedBy?.length)) {
    const rules = a.deniedBy!.map((n) => printable(n, 100));
    const by = `denied by rule${rules.length > 1 ? 's' : ''} ${rules.join(', ')}`;
    parts.push(r.actions.length > 1 ? `${a.action} ${by}` : by);
  }
  return parts.join('; ');
}

/**
 * The message a refused client prints: who (issuer name and subject), what (actions on which
 * repository), why (no rule grants it / denied by rule …), and how to check. Names only what the
 * requester asked for and its own identity. With `detail: false`, Distribution's generic message.
 */
export function denialMessage(who: Requester | undefined, refusals: Refusal[], detail: boolean): string {
  if (!detail || refusals.length === 0) return GENERIC_DENIAL;
  const whom = who ? `issuer ${printable(who.issuerName, 100)}, subject ${printable(who.subject)}` : 'this token';
  const what = refusals
    .map((r) => {
      const target =
        r.type === 'repository' ? `repository ${printable(r.name)}` : `${printable(r.type, 50)} ${printable(r.name)}`;
      return `${r.actions.map((a) => label(a.action)).join(', ')} on ${target}: ${why(r)}`;
    })
    .join('; and ');
  // Single-quoted: a `*` must reach the command, not the shell's glob.
  const scopes = refusals
    .map(
      (r) =>
        `--scope '${formatScope({ type: r.type, name: printable(r.name), actions: r.actions.map((a) => a.action) })}'`,
    )
    .join(' ');
  const issuerFlag = who ? `--issuer-name ${printable(who.issuerName, 100)} ` : '';
  return `${whom} was refused ${what}. Check with: registry-auth-proxy policy test ${issuerFlag}${scopes} --claims <identity token>`;
}

/**
 * The message a client prints when a request-time rule refuses (issue 21): who, which method on
 * which repository and reference, why, and the `policy test` line that reproduces it. With
 * `detail: false`, Distribution's generic message.
 */
export function requestDenialMessage(
  who: Requester | undefined,
  facts: RequestFacts,
  refusal: RequestRefusal,
  detail: boolean,
): string {
  if (!detail) return GENERIC_DENIAL;
  const whom = who ? `issuer ${printable(who.issuerName, 100)}, subject ${printable(who.subject)}` : 'this token';
  const ref = facts.reference ? `${isValidDigest(facts.reference) ? '@' : ':'}${printable(facts.reference)}` : '';
  const target = facts.kind === 'catalog' ? 'the catalog' : `${facts.kind} ${printable(facts.repository)}${ref}`;
  const scope = formatScope({
    type: facts.kind === 'catalog' ? 'registry' : 'repository',
    name: facts.repository || 'catalog',
    actions: [...facts.actions],
  });
  const issuerFlag = who ? `--issuer-name ${printable(who.issuerName, 100)} ` : '';
  const refFlag = facts.reference ? ` --reference ${printable(facts.reference)}` : '';
  const check = `registry-auth-proxy policy test ${issuerFlag}--scope '${scope}' --method ${facts.method} --kind ${facts.kind}${refFlag} --claims <identity token>`;
  return `${whom} was refused ${facts.method} ${target}: ${printable(refusal.reason, 400)}. Check with: ${check}`;
}

/** The structured `detail` of the OCI error (clients do not print it; scripts may read it). */
export function denialDetail(who: Requester | undefined, refusals: Refusal[], detail: boolean): unknown {
  // Off: Distribution's access records, nothing about rules or identity.
  if (!detail)
    return refusals.map((r) => ({ Type: r.type, Name: r.name, Action: r.actions.map((a) => a.action).join(',') }));
  return {
    ...(who ? { issuerName: who.issuerName, subject: who.subject } : {}),
    refused: refusals.map((r) => ({
      type: r.type,
      name: r.name,
      actions: r.actions.map((a) => a.action),
      reason: why(r),
    })),
    check: 'registry-auth-proxy policy test',
  };
}

/** `<issuerName>:<subject>` → its parts (undefined for a `sub` not of that shape). */
export function requesterOf(sub: string): Requester | undefined {
  const i = sub.indexOf(':');
  if (i <= 0) return undefined;
  return { issuerName: sub.slice(0, i), subject: sub.slice(i + 1) };
}

/** A structurally valid refusal list (read back from a token claim), or undefined. */
export function parseRefusals(raw: unknown): Refusal[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const ok = raw.every(
    (r) =>
      typeof r === 'object' &&
      r !== null &&
      typeof r.type === 'string' &&
      typeof r.name === 'string' &&
      Array.isArray(r.actions) &&
      r.actions.every(
        (a: unknown) =>
          typeof a === 'object' &&
          a !== null &&
          typeof (a as RefusedAction).action === 'string' &&
          ((a as RefusedAction).deniedBy === undefined ||
            (Array.isArray((a as RefusedAction).deniedBy) &&
              (a as RefusedAction).deniedBy!.every((n) => typeof n === 'string'))),
      ),
  );
  return ok ? (raw as Refusal[]) : undefined;
}

/**
 * One decision in words: granted, or why not — "no rule matched" when no rule applied at all, else
 * which actions no rule grants (and which allow rules did match) and which deny rules removed what.
 * `policy test` and `policy replay` print it. The result uses the audit log's and metric's vocabulary (granted | partial | denied). Pure.
 */
export function explainDecision(d: Decision): { result: GrantResult; reason: string } {
  const result = grantResult([d]);
  const refusal = refusalOf(d, { ruleNames: true });
  if (!refusal) return { result, reason: `granted ${d.granted.join(',')}` };
  if (d.matched.length === 0) return { result, reason: 'no rule matched' };
  const parts: string[] = [];
  const ungranted = refusal.actions.filter((a) => !a.deniedBy?.length).map((a) => a.action);
  const allows = d.matched.filter((m) => m.effect === 'allow').map((m) => m.name);
  if (ungranted.length)
    parts.push(`no rule grants ${ungranted.join(',')}${allows.length ? ` (matched: ${allows.join(', ')})` : ''}`);
  for (const a of refusal.actions)
    if (a.deniedBy?.length) parts.push(`${a.action} denied by rule ${a.deniedBy.join(', ')}`);
  return { result, reason: parts.join('; ') };
}
