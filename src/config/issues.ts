import type { z } from 'zod';
import { ConfigError } from './errors.js';

/** Turns zod's issues into the one ConfigError users see: file, key path, problem. */

type Issue = z.core.$ZodIssue;

/** `issuers[0].tokenReview.url`, as the docs and earlier versions spell key paths. */
function keyPath(path: readonly PropertyKey[], base = ''): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    base,
  );
}

/**
 * A union reports "no option matched". When one option got past the value's type (`tokenReview:`
 * given as a mapping with a bad key), its own problem is the useful one: report that instead.
 */
function unwrapUnion(issue: Issue): Issue {
  if (issue.code !== 'invalid_union') return issue;
  const informative = issue.errors.filter((branch) =>
    branch.some((i) => i.path.length > 0 || i.code !== 'invalid_type'),
  );
  if (informative.length !== 1) return issue;
  const inner = unwrapUnion(informative[0]![0]!);
  return { ...inner, path: [...issue.path, ...inner.path] };
}

/**
 * The problem to report. Unknown keys first: a misspelt key is usually also why another key
 * looks missing, and the misspelling is what the user has to fix.
 */
function firstProblem(issues: readonly Issue[], base = ''): { keyPath: string; problem: string } {
  const issue = unwrapUnion(issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!);
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
  return { keyPath: keyPath(path, base) || '(root)', problem: issue.message };
}

/** Parses `value`, or throws the first problem as a ConfigError under `base` (a key path or a flag). */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  file: string | undefined,
  base = '',
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const { keyPath: at, problem } = firstProblem(result.error.issues, base);
  throw new ConfigError(file, at, problem);
}
