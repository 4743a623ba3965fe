import { z } from 'zod';
import { parseDuration } from './duration.js';

/**
 * The field schemas the config file is built from, each carrying the exact wording of its
 * problems (tests and users' scripts match on it): zod's own messages never reach a user.
 */

/** A check that returns the problem with a value, or undefined when it is fine. */
type Problem<T> = (value: T) => string | undefined;

/** Adds `problem` as a refinement: the issue lands on the value's own key path. */
export function refineBy<S extends z.ZodType>(schema: S, problem: Problem<z.output<S>>): S {
  return schema.check((ctx) => {
    const p = problem(ctx.value);
    if (p !== undefined) ctx.issues.push({ code: 'custom', message: p, input: ctx.value });
  });
}

/** A required non-empty string. */
export const text = z
  .string({ error: (i) => (i.input === undefined ? 'is required' : 'must be a non-empty string') })
  .min(1, 'must be a non-empty string');

/** An optional string key: YAML's empty value (`key:`) counts as absent, as it always has. */
export function optionalString<T extends z.ZodType<unknown, string>>(schema: T) {
  return schema
    .nullish()
    .transform((x): z.output<T> | undefined => x ?? undefined)
    .optional();
}

export const optText = optionalString(text);

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** A pino level by name: pino itself would throw an internal error on any other word. */
export const logLevel = z.enum(LOG_LEVELS, {
  error: (i) => `${JSON.stringify(i.input)} is not a log level: use one of ${LOG_LEVELS.join(', ')}`,
});

export const bool = z.boolean({ error: 'must be true or false' });

/** A non-negative number, e.g. requests per second. */
export const nonNegative = z.number({ error: 'must be a number >= 0' }).min(0, 'must be a number >= 0');

export function intBetween(min: number, max: number, what = '') {
  const problem = `must be an integer between ${min} and ${max}${what}`;
  return z.number({ error: problem }).int(problem).min(min, problem).max(max, problem);
}

/** `30s`, `5m`, `1h`, `250ms` or a bare number of seconds, in milliseconds. */
export const duration = z
  .union([z.string(), z.number()], { error: 'must be a duration like 30s, 5m, 1h' })
  .transform((x, ctx) => {
    try {
      return parseDuration(x);
    } catch (err) {
      ctx.issues.push({ code: 'custom', message: (err as Error).message, input: x });
      return z.NEVER;
    }
  });

/** Durations are kept in ms; JWT lifetimes and skews are in seconds. */
export const seconds = (ms: number) => Math.round(ms / 1000);

/** A duration in milliseconds within [min, max]. */
export function durationWithin(min: number, max: number, problem: string) {
  return duration.pipe(refineBy(z.number(), (ms) => (ms < min || ms > max ? problem : undefined)));
}

export function httpURLProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `"${s}" is not a URL`;
  }
  return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : `"${s}" must be http or https`;
}

/** An http(s) URL given as a string (flags may be empty strings; the file's must not be). */
export const httpURL = refineBy(z.string(), httpURLProblem);

/**
 * A mapping with exactly these keys. `hidden` keys are in the shape only to refuse a value with a
 * better message (a `password` where a `passwordFile` belongs) and are not listed as known.
 */
export function mapping<S extends z.ZodRawShape>(
  shape: S,
  options: { notAMapping?: string; hidden?: readonly string[] } = {},
) {
  const known = Object.keys(shape)
    .filter((k) => !options.hidden?.includes(k))
    .join(', ');
  return z.strictObject(shape, {
    error: (i) => {
      if (i.code === 'unrecognized_keys') return `unknown key (known: ${known})`;
      if (i.code === 'invalid_type') return options.notAMapping ?? 'must be a mapping';
      return undefined;
    },
  });
}

/** A key that must never be set: secrets are read from files (`fileKey`), never from the config. */
export function secretInline(fileKey: string) {
  return z.never({ error: `secrets are read from files: use ${fileKey}` }).optional();
}
