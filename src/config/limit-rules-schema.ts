import { z } from 'zod';
import { durationWithin, intBetween, mapping, optText, refineBy, secretInline, text } from './fields.js';

/**
 * `limits.rules` and `limits.store` (CONTRACT §8): limits keyed by who is asking (limits/ applies
 * them). Kept out of schema.ts, which only lists the two keys. Keys of the first shape of issue 23
 * are refused with a message naming their replacement.
 */

/** A key that was renamed or folded into another: refused, naming what to write instead. */
function replacedBy(instead: string) {
  return z.never({ error: `no longer a key: ${instead}` }).optional();
}

/** `redis://host:6379/0` or `rediss://` (TLS); the password comes from passwordFile, never the URL. */
function redisURLProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `"${s}" is not a URL (redis://host:6379 or rediss://host:6380 for TLS)`;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `"${s}" must start with redis:// or rediss:// (TLS)`;
  if (u.password) return 'must not hold the password: put it in a file and name it in passwordFile';
  return undefined;
}

const STORE_OLD_KEYS = {
  redis: replacedBy('write url (and passwordFile, caFile) directly under limits.store'),
  failure: replacedBy('use failMode: open | closed'),
};

export const limitStoreSchema = mapping(
  {
    type: z
      .enum(['memory', 'cluster', 'redis'], { error: 'must be one of memory, cluster, redis' })
      .optional()
      .describe(
        'where counters live: memory (this process), cluster (the primary of workers: N), redis (shared by replicas); default: redis when url is set, else cluster with workers > 1, else memory',
      ),
    url: refineBy(text, redisURLProblem)
      .optional()
      .describe('the Redis/Valkey server of type: redis: redis://host:6379/0, or rediss://host:6380/0 for TLS'),
    passwordFile: optText.describe('file holding the Redis password (AUTH); a username goes in the URL'),
    password: secretInline('passwordFile'),
    caFile: optText.describe(
      'PEM CA bundle that signed the server certificate of a rediss:// URL; default: the system CAs',
    ),
    failMode: z
      .enum(['open', 'closed'], { error: 'must be open or closed' })
      .default('open')
      .describe(
        'Redis unreachable: open keeps limiting per process meanwhile (logged, counted, named in /readyz); closed answers 503',
      ),
    timeout: durationWithin(10, 10_000, 'must be between 10ms and 10s')
      .prefault('500ms')
      .describe('a store call not answered by then counts as the store failing'),
    ...STORE_OLD_KEYS,
  },
  { hidden: ['password', ...Object.keys(STORE_OLD_KEYS)] },
)
  .check((ctx) => {
    const { type, url } = ctx.value;
    if (type === 'redis' && !url)
      ctx.issues.push({ code: 'custom', path: ['url'], message: 'is required with type: redis', input: ctx.value });
    if (type !== undefined && type !== 'redis' && url)
      ctx.issues.push({
        code: 'custom',
        path: ['url'],
        message: `is the Redis server of type: redis, not of type: ${type}`,
        input: ctx.value,
      });
  })
  .prefault({});

const RATE = 'must be a mapping {per, count, burst} (e.g. {per: 1h, count: 60, burst: 10})';

/**
 * `count` requests per `per`, at most `burst` of them at once (limits/rules.ts turns it into
 * counters): `{per: 1h, count: 60, burst: 10}` admits 10 at once, 10 more every 10 minutes, and
 * never more than 60 in an hour.
 */
const rateSchema = mapping(
  {
    per: durationWithin(1000, 31 * 24 * 3_600_000, 'must be a duration between 1s and 31d').describe(
      'the window, e.g. 1s, 1m, 1h, 6h (whole seconds)',
    ),
    count: intBetween(1, 1e9).describe('requests counted per window: never more within one window'),
    burst: intBetween(1, 1e9)
      .optional()
      .describe(
        'most of count admitted at once: the window is paced in slices of per × burst / count holding burst each; default: count (no pacing)',
      ),
  },
  { notAMapping: RATE },
).check((ctx) => {
  const { count, burst } = ctx.value;
  if (burst !== undefined && burst > count)
    ctx.issues.push({
      code: 'custom',
      path: ['burst'],
      message: `must be at most count (${count}): burst is how many of count may come at once`,
      input: ctx.value,
    });
});

const RULE_OLD_KEYS = {
  at: replacedBy(
    'use match (e.g. match: request.kind == "token" for /token only, request.kind != "token" for /v2/ only)',
  ),
  upstreams: replacedBy('use match: request.upstream in ["hub"]'),
  quota: replacedBy('use rate: {per: 1h, count: 60} (a quota is a rate without burst)'),
  burst: replacedBy('write it inside rate: {per, count, burst}'),
  costs: replacedBy(
    'use match over request.kind (e.g. match: request.kind == "manifest"); a matching request counts 1, a HEAD 0',
  ),
};

const ruleSchema = mapping(
  {
    name: text
      .pipe(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, . _ or -'))
      .describe('named in 429 messages, logs and metrics'),
    key: optText.describe(
      'CEL over identity, claims and request giving the key (e.g. identity.namespace); default: issuer + subject (an anonymous caller: its address); "" or an error: not counted',
    ),
    match: optText.describe(
      'CEL over identity, claims and request: only requests for which it is true count (e.g. request.upstream == "hub" && request.kind == "manifest"); request.kind is "token" at /token; default: every request at /token and /v2/ (a HEAD never counts)',
    ),
    rate: rateSchema.describe('count requests per window per key, at most burst at once'),
    ...RULE_OLD_KEYS,
  },
  { hidden: Object.keys(RULE_OLD_KEYS) },
);

function uniqueNames(rules: { name: string }[]): string | undefined {
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.name)) return `two rules are named "${r.name}": names must be unique`;
    seen.add(r.name);
  }
  return undefined;
}

export const limitRulesSchema = refineBy(z.array(ruleSchema, { error: 'must be a list of rules' }), uniqueNames)
  .default([])
  .describe('limits keyed by who is asking, counted in limits.store');
