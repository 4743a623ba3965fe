import { z } from 'zod';
import { durationWithin, intBetween, mapping, nonNegative, optText, refineBy, secretInline, text } from './fields.js';

/**
 * `limits.rules` and `limits.store`: limits keyed by who is asking (limits/ applies them). Kept out
 * of schema.ts, which only lists the two keys.
 */

/** The /v2/ route kinds a rule may put a cost on (oci/route.ts). */
const ROUTE_KINDS = ['manifest', 'blob', 'tags', 'catalog', 'referrers', 'upload-start', 'upload', 'ping'] as const;

const PLACES = 'must be a list of token, registry';

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

const redisSchema = mapping(
  {
    url: refineBy(text, redisURLProblem).describe(
      'redis://host:6379/0, or rediss://host:6380/0 for TLS; Valkey speaks the same protocol',
    ),
    passwordFile: optText.describe('file holding the Redis password (AUTH); a username goes in the URL'),
    password: secretInline('passwordFile'),
    caFile: optText.describe(
      'PEM CA bundle that signed the server certificate of a rediss:// URL; default: the system CAs',
    ),
  },
  { hidden: ['password'] },
);

export const limitStoreSchema = mapping({
  type: z
    .enum(['memory', 'cluster', 'redis'], { error: 'must be one of memory, cluster, redis' })
    .optional()
    .describe(
      'where counters live: memory (this process), cluster (the primary of workers: N), redis (shared by replicas); default: redis when redis is set, else cluster with workers > 1, else memory',
    ),
  redis: redisSchema.optional().describe('the Redis/Valkey server of type: redis'),
  failure: z
    .enum(['fail-open', 'fail-closed'], { error: 'must be fail-open or fail-closed' })
    .default('fail-open')
    .describe('Redis unreachable: fail-open limits per process meanwhile; fail-closed answers 503'),
  timeout: durationWithin(10, 10_000, 'must be between 10ms and 10s')
    .prefault('500ms')
    .describe('a store call not answered by then counts as the store failing'),
})
  .check((ctx) => {
    if (ctx.value.type === 'redis' && !ctx.value.redis)
      ctx.issues.push({
        code: 'custom',
        path: ['redis'],
        message: 'is required with type: redis (redis: {url: …})',
        input: ctx.value,
      });
  })
  .prefault({});

const quotaSchema = mapping({
  limit: intBetween(1, 1e9).describe('requests (cost units) per window'),
  window: durationWithin(1000, 31 * 24 * 3_600_000, 'must be between 1s and 31d').describe(
    'length of the fixed window, e.g. 1h, 6h',
  ),
});

const cost = intBetween(0, 1000).optional();
const costsSchema = mapping(
  {
    manifest: cost,
    blob: cost,
    tags: cost,
    catalog: cost,
    referrers: cost,
    'upload-start': cost,
    upload: cost,
    ping: cost,
  },
  { notAMapping: `must be a mapping of route kind to cost (${ROUTE_KINDS.join(', ')})` },
).describe(
  'cost of a /v2/ request by route kind; kinds not listed cost 0; default: every kind costs 1 (HEAD requests always cost 0)',
);

const ruleSchema = mapping({
  name: text
    .pipe(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, . _ or -'))
    .describe('named in 429 messages, logs and metrics'),
  at: z
    .array(z.enum(['token', 'registry'], { error: PLACES }), { error: PLACES })
    .min(1, PLACES)
    .default(['token', 'registry'])
    .describe('where the rule counts: token (/token, after verification) and/or registry (/v2/)'),
  key: optText.describe(
    'CEL over identity, claims and request giving the key (e.g. identity.namespace); default: issuer + subject; empty string: not limited',
  ),
  upstreams: z
    .array(text, { error: 'must be a list of upstream names' })
    .optional()
    .describe('only /v2/ requests to these upstreams count'),
  rate: nonNegative.optional().describe('requests per second on average (needs burst or defaults burst to 2 × rate)'),
  burst: nonNegative.optional().describe('requests allowed at once above the rate'),
  quota: quotaSchema.optional().describe('a fixed-window quota, e.g. {limit: 60, window: 1h}'),
  costs: costsSchema.optional(),
}).check((ctx) => {
  const r = ctx.value;
  if (!r.rate && !r.quota)
    ctx.issues.push({ code: 'custom', path: [], message: 'needs a rate, a quota or both', input: r });
  if (r.burst !== undefined && !r.rate)
    ctx.issues.push({ code: 'custom', path: ['burst'], message: 'needs a rate', input: r });
});

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
