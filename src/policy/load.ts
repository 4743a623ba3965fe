import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCel } from '@marcbachmann/cel-js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { policyEnvironment, type CompiledWhen } from './cel.js';
import { createPolicyEngine, type CompiledRule } from './engine.js';
import { lazyReads, REPLACED_FIELDS, replacedReads, requestTimeInputs } from './reads.js';
import type { Effect, PolicyEngine, RulePhase } from './types.js';

/** An invalid policy: names the file, the rule and what is wrong (the CEL error for `when`). */
export class PolicyLoadError extends Error {
  constructor(
    readonly file: string,
    readonly rule: string | undefined,
    readonly problem: string,
  ) {
    super(`${file}${rule !== undefined ? `: rule "${rule}"` : ''}: ${problem}`);
    this.name = 'PolicyLoadError';
  }
}

const NAME = '`name` is required: letters, digits, ".", "_", "-"';
const ACTIONS = '`actions` must be a non-empty list (pull, push, delete or *)';
const WHEN = '`when` must be a CEL expression string';

/** One rule as written; `when` is only shaped here, and parsed and type-checked by compileRule. */
const ruleSchema = z.strictObject(
  {
    name: z.string({ error: NAME }).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, NAME),
    effect: z
      .enum(['allow', 'deny', 'audit'], { error: '`effect` must be allow, deny or audit' })
      .nullish()
      .transform((e): Effect => e ?? 'allow'),
    actions: z
      .array(
        z.enum(['pull', 'push', 'delete', '*'], {
          error: (i) => `unknown action ${JSON.stringify(i.input)} (use pull, push, delete or *)`,
        }),
        {
          error: ACTIONS,
        },
      )
      .min(1, ACTIONS),
    when: z
      .string({ error: WHEN })
      .refine((w) => w.trim() !== '', WHEN)
      .optional(),
    // CONTRACT §6: token (default) | request; `both` is our extension (one deny rule, both phases).
    phase: z
      .enum(['token', 'request', 'both'], { error: '`phase` must be token, request or both' })
      .nullish()
      .transform((p): RulePhase => p ?? 'token'),
    description: z.string({ error: '`description` must be a string' }).optional(),
  },
  {
    error: (i) =>
      i.code === 'unrecognized_keys'
        ? `unknown key "${i.keys[0]}" (known: name, effect, actions, phase, when, description)`
        : 'a rule must be a mapping',
  },
);

/** The whole file: `rules` and nothing else; empty or `rules:` alone is no rules. */
const policyFileSchema = z.strictObject(
  { rules: z.array(z.unknown(), { error: '`rules` must be a list' }).nullish() },
  {
    error: (i) =>
      i.code === 'unrecognized_keys'
        ? `unknown key "${i.keys[0]}" (only "rules")`
        : 'must be a mapping with a `rules` list',
  },
);

/** The problem to report: unknown keys first (a misspelt key is what to fix), else the first. */
function firstProblem(issues: readonly z.core.$ZodIssue[]): string {
  return (issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!).message;
}

/**
 * Loads a policy file, or every `*.yaml`/`*.yml` directly inside a directory (sorted by name; not
 * recursive, so `policies/examples/` is never loaded by accident). Every rule is validated and its
 * `when` parsed and type-checked now, so a bad policy stops start-up instead of failing requests.
 */
/** `upstreamOf`: request.upstream for a repository name (config/upstreams.ts; '' with one upstream). */
export function loadPolicies(path: string, upstreamOf?: (repository: string) => string): PolicyEngine {
  let files: string[];
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new PolicyLoadError(path, undefined, 'policy path does not exist (set --policy or `policies:`)');
  }
  if (st.isDirectory()) {
    files = readdirSync(path)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
      .map((f) => join(path, f));
  } else {
    files = [path];
  }
  const env = policyEnvironment();
  const rules: CompiledRule[] = [];
  const names = new Map<string, string>();
  for (const file of files) {
    for (const rule of loadFile(file, env)) {
      const prev = names.get(rule.name);
      if (prev !== undefined) throw new PolicyLoadError(file, rule.name, `duplicate rule name (also in ${prev})`);
      names.set(rule.name, file);
      rules.push(rule);
    }
  }
  return createPolicyEngine(rules, upstreamOf);
}

/** Compiles rules from YAML text (exported for tests and `policy test`). */
export function compilePolicyText(text: string, file = '<inline>'): PolicyEngine {
  return createPolicyEngine(parseRules(text, file, policyEnvironment()));
}

function loadFile(file: string, env: ReturnType<typeof policyEnvironment>): CompiledRule[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyLoadError(file, undefined, `cannot read: ${(err as Error).message}`);
  }
  return parseRules(text, file, env);
}

function parseRules(text: string, file: string, env: ReturnType<typeof policyEnvironment>): CompiledRule[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new PolicyLoadError(file, undefined, `not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return [];
  const parsed = policyFileSchema.safeParse(doc);
  if (!parsed.success) throw new PolicyLoadError(file, undefined, firstProblem(parsed.error.issues));
  return (parsed.data.rules ?? []).map((raw, i) => compileRule(raw, i, file, env));
}

/** Validates one rule and parses and type-checks its `when`, failing with the rule's name (or `#n`). */
function compileRule(
  raw: unknown,
  index: number,
  file: string,
  env: ReturnType<typeof policyEnvironment>,
): CompiledRule {
  const name = (raw as { name?: unknown } | null)?.name;
  const label = typeof name === 'string' && name ? name : `#${index + 1}`;
  const fail = (problem: string): never => {
    throw new PolicyLoadError(file, label, problem);
  };
  // The key was renamed to the contract's: say so instead of "unknown key".
  if (typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'at')) {
    const was = (raw as { at?: unknown }).at;
    const value = typeof was === 'string' && /^[a-z]{1,16}$/.test(was) ? was : 'request';
    fail(`\`at\` is now \`phase\`: write \`phase: ${value}\` (token, the default, request or both)`);
  }
  const parsed = ruleSchema.safeParse(raw);
  if (!parsed.success) return fail(firstProblem(parsed.error.issues));
  const rule = parsed.data;
  if (rule.effect === 'allow' && rule.phase !== 'token') {
    fail(
      `\`effect: allow\` with \`phase: ${rule.phase}\`: access is granted when the token is issued; a request-time rule can only refuse (use effect: deny, or phase: token)`,
    );
  }
  if (rule.effect === 'audit' && rule.phase !== 'token')
    fail(
      `\`effect: audit\` with \`phase: ${rule.phase}\`: audit rules are evaluated when the token is issued only (for now)`,
    );
  const { evaluate, inputs } = compileWhen(rule.when, env, fail);
  // A token-time rule reading what only a /v2/ request has would never match: say so now.
  if (rule.phase !== 'request' && inputs.length > 0) {
    const when =
      rule.phase === 'both'
        ? 'is also evaluated when the token is issued'
        : 'is evaluated when the token is issued (the default)';
    fail(
      `\`when\` reads ${inputs.join(', ')}, which only a /v2/ request has, but the rule ${when}: say \`phase: request\``,
    );
  }
  return {
    name: rule.name,
    effect: rule.effect,
    phase: rule.phase,
    actions: [...new Set(rule.actions)],
    when: rule.when,
    file,
    evaluate,
    reads: lazyReads(inputs),
  };
}

/** Parses and type-checks a rule's `when`: the compiled expression and the request-time fields it reads. */
function compileWhen(
  when: string | undefined,
  env: ReturnType<typeof policyEnvironment>,
  fail: (problem: string) => never,
): { evaluate?: CompiledWhen; inputs: string[] } {
  if (when === undefined) return { inputs: [] };
  let replaced: string[] = [];
  try {
    replaced = replacedReads(parseCel(when).ast);
  } catch {
    // a syntax error: the check below reports it
  }
  if (replaced.length > 0)
    fail(`\`when\` reads ${replaced[0]}, which was removed: use ${REPLACED_FIELDS[replaced[0]!]}`);
  const checked = env.check(when);
  if (!checked.valid) fail(`invalid CEL in \`when\`: ${checked.error?.message ?? 'type check failed'}`);
  if (checked.type !== 'bool' && checked.type !== 'dyn') fail(`\`when\` must evaluate to bool, not ${checked.type}`);
  const parsedWhen = env.parse(when);
  return { evaluate: parsedWhen as unknown as CompiledWhen, inputs: requestTimeInputs(parsedWhen.ast) };
}
