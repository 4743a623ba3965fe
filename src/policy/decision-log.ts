import { z } from 'zod';

/**
 * The decision log (`audit.decisionLog`, written through audit/'s bounded file append): each `/token` decision's inputs and outcome, one JSON
 * object a line, so `policy replay` can decide them again under other policies. It holds what the
 * policy saw — the identity, the claims the operator listed (`audit.claims`, plus `iss` and `sub`,
 * which the identity names anyway), the scopes and the request context — never a token. The schema
 * is versioned like the audit events': fields are only added under v1.
 */

export const DECISION_SCHEMA = 'rap.decision/v1';

const str = z.string();
const scope = z.object({ type: str, name: str, actions: z.array(str) });

const decisionSchema = z.object({
  schema: z.literal(DECISION_SCHEMA, { error: `schema must be "${DECISION_SCHEMA}"` }),
  time: str,
  requestId: str.optional(),
  /** The digest of the policies that decided (policy/digest.ts). */
  policy: str,
  identity: z.object({
    issuerName: str,
    issuer: str,
    subject: str,
    preset: str.optional(),
    namespace: str.optional(),
    serviceAccount: str.optional(),
    podName: str.optional(),
  }),
  claims: z.record(str, z.unknown()),
  request: z.object({ service: str, clientIP: str }),
  /** One per requested scope, in order: what was granted and the rules that matched. */
  decisions: z.array(z.object({ scope, upstream: str.optional(), granted: z.array(str), rules: z.array(str) })),
});

export type DecisionRecord = z.output<typeof decisionSchema>;

/** One line of a decision log, or what is wrong with it (the field's path and the problem). Pure. */
export function parseDecisionLine(line: string): { record: DecisionRecord } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { problem: `not JSON: ${(err as Error).message}` };
  }
  const parsed = decisionSchema.safeParse(value);
  if (parsed.success) return { record: parsed.data };
  const issue = parsed.error.issues[0]!;
  const at = issue.path.length ? `${issue.path.join('.')}: ` : '';
  return { problem: `not a ${DECISION_SCHEMA} record: ${at}${issue.message}` };
}
