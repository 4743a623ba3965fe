import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { policyEnvironment, type CompiledWhen } from './cel.js';
import { createPolicyEngine, type CompiledRule } from './engine.js';
import type { Effect, PolicyEngine } from './types.js';

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

const RULE_KEYS = ['name', 'effect', 'actions', 'when', 'description'];
const KNOWN_ACTIONS = new Set(['pull', 'push', 'delete', '*']);

/**
 * Loads a policy file, or every `*.yaml`/`*.yml` directly inside a directory (sorted by name; not
 * recursive, so `policies/examples/` is never loaded by accident). Every rule is validated and its
 * `when` parsed and type-checked now, so a bad policy stops start-up instead of failing requests.
 */
export function loadPolicies(path: string): PolicyEngine {
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
  return createPolicyEngine(rules);
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
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new PolicyLoadError(file, undefined, 'must be a mapping with a `rules` list');
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) {
    if (k !== 'rules') throw new PolicyLoadError(file, undefined, `unknown key "${k}" (only "rules")`);
  }
  if (top.rules === undefined || top.rules === null) return [];
  if (!Array.isArray(top.rules)) throw new PolicyLoadError(file, undefined, '`rules` must be a list');
  return top.rules.map((raw, i) => compileRule(raw, i, file, env));
}

function compileRule(raw: unknown, index: number, file: string, env: ReturnType<typeof policyEnvironment>): CompiledRule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PolicyLoadError(file, `#${index + 1}`, 'a rule must be a mapping');
  const r = raw as Record<string, unknown>;
  const label = typeof r.name === 'string' && r.name ? r.name : `#${index + 1}`;
  const fail = (problem: string): never => {
    throw new PolicyLoadError(file, label, problem);
  };
  for (const k of Object.keys(r)) if (!RULE_KEYS.includes(k)) fail(`unknown key "${k}" (known: ${RULE_KEYS.join(', ')})`);
  if (typeof r.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(r.name)) fail('`name` is required: letters, digits, ".", "_", "-"');
  const effect = (r.effect ?? 'allow') as Effect;
  if (effect !== 'allow' && effect !== 'deny') fail('`effect` must be allow or deny');
  if (!Array.isArray(r.actions) || r.actions.length === 0) fail('`actions` must be a non-empty list (pull, push, delete or *)');
  const actions = r.actions as unknown[];
  for (const a of actions) {
    if (typeof a !== 'string' || !KNOWN_ACTIONS.has(a)) fail(`unknown action ${JSON.stringify(a)} (use pull, push, delete or *)`);
  }
  let when: CompiledWhen | undefined;
  let source: string | undefined;
  if (r.when !== undefined) {
    if (typeof r.when !== 'string' || r.when.trim() === '') fail('`when` must be a CEL expression string');
    source = r.when as string;
    const checked = env.check(source);
    if (!checked.valid) fail(`invalid CEL in \`when\`: ${checked.error?.message ?? 'type check failed'}`);
    if (checked.type !== 'bool' && checked.type !== 'dyn') fail(`\`when\` must evaluate to bool, not ${checked.type}`);
    when = env.parse(source) as unknown as CompiledWhen;
  }
  return { name: r.name as string, effect, actions: [...new Set(actions as string[])], when: source, file, evaluate: when };
}
