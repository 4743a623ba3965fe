import type { Anchor, PolicyResult, TrustPolicy, Verdict } from './types.js';

/** From what verified to a verdict, and from a verdict to what the guard does: pure functions. */

function describeAnchor(a: Anchor): string {
  return a.kind === 'key' ? `key ${a.name}` : `keyless identity ${a.name}`;
}

/** The verdict for an image under the policies that apply to it, given which are satisfied and by whom. */
export function verdictOf(
  policies: readonly TrustPolicy[],
  satisfied: readonly boolean[],
  signers: readonly string[],
  problems: readonly string[],
  looked: readonly string[],
): Verdict {
  const results: PolicyResult[] = policies.map((p, i) => ({
    policy: p.name,
    mode: p.mode,
    satisfied: satisfied[i] === true,
    required: p.require.map(describeAnchor),
  }));
  const failed = results.find((r) => !r.satisfied);
  const why = problems.length ? problems.join('; ') : `no signature found (looked at ${looked.join(', ')})`;
  return {
    verified: failed === undefined,
    signers: [...new Set(signers)],
    ...(failed ? { reason: `no signature by ${failed.required.join(' or ')}: ${why}` } : {}),
    policies: results,
  };
}

/** The lookup failed: every policy that applies is unsatisfied, and the guard must not read that as "unsigned". */
export function errorVerdict(policies: readonly TrustPolicy[], error: string): Verdict {
  return {
    verified: false,
    signers: [],
    reason: `could not look for signatures: ${error}`,
    error: true,
    policies: policies.map((p) => ({
      policy: p.name,
      mode: p.mode,
      satisfied: false,
      required: p.require.map(describeAnchor),
    })),
  };
}

/** What the guard does with a verdict: `enforce` refuses, `audit` serves and records. */
type TrustOutcome =
  | { action: 'pass'; /** Audit lines: policies in audit mode that were not satisfied. */ recorded: string[] }
  | {
      action: 'refuse';
      /** For a 403 DENIED: names image, digest and what was required. */ message: string;
      recorded: string[];
    };

export function trustOutcome(image: string, digest: string, verdict: Verdict): TrustOutcome {
  const line = (r: PolicyResult) =>
    `${image}@${digest}: ${verdict.error ? verdict.reason! : `no signature by ${r.required.join(' or ')}`} (policy ${r.policy}${r.mode === 'audit' ? ', audit' : ''})`;
  const unsatisfied = verdict.policies.filter((r) => !r.satisfied);
  const recorded = unsatisfied.map(line);
  const enforced = unsatisfied.find((r) => r.mode === 'enforce');
  return enforced ? { action: 'refuse', message: line(enforced), recorded } : { action: 'pass', recorded };
}
