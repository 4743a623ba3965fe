import { Environment } from '@marcbachmann/cel-js';

/** The token-time fields of `request` (CONTRACT §3): what /token knows about a requested scope. */
const TOKEN_REQUEST_FIELDS = {
  type: 'string',
  repository: 'string',
  actions: 'list<string>',
  service: 'string',
  clientIP: 'string',
  upstream: 'string',
} as const;

/**
 * The fields only a `/v2/` request has (issue 21, CONTRACT §6): rules reading them, or `upstream`,
 * must say `phase: request`. `tag` and `digest` are absent (CEL `has()` is false, reading one is an
 * evaluation error, so a deny rule refuses) when the request has no such reference: `tag` only on a
 * manifest request by tag; `digest` when the reference is a digest, or on a manifest PUT (the pushed
 * manifest's digest, hashed only when a rule reads it). `mediaType` is "" and `contentLength` -1
 * when the request declares none.
 */
export const REQUEST_ONLY_FIELDS = {
  method: 'string',
  kind: 'string',
  reference: 'string',
  tag: 'string',
  digest: 'string',
  mediaType: 'string',
  contentLength: 'int',
} as const;

/** What `identity` holds (CONTRACT §3). */
const IDENTITY_FIELDS = {
  issuerName: 'string',
  issuer: 'string',
  subject: 'string',
  preset: 'string',
  namespace: 'string',
  serviceAccount: 'string',
  podName: 'string',
} as const;

/** What the tag named by the request points at on the upstream now (one HEAD, only when a rule reads it). */
export const UPSTREAM_FIELDS = { tagExists: 'bool', digest: 'string' } as const;

/** The manifest's signature verdict (issue 22): false and [] where no `signatures:` entry applies. */
const IMAGE_FIELDS = { verified: 'bool', signers: 'list<string>' } as const;

/**
 * The CEL environment every `when` is type-checked against. `identity`, `request` and `upstream`
 * have declared fields so a typo like `identity.namespce` fails at start-up, not at request time.
 * Which fields a rule may read depends on its `phase` (load.ts, reads.ts).
 */
export function policyEnvironment(): Environment {
  return new Environment({ unlistedVariablesAreDyn: false })
    .registerVariable('claims', 'map<string, dyn>')
    .registerVariable({ name: 'identity', schema: IDENTITY_FIELDS })
    .registerVariable({ name: 'request', schema: { ...TOKEN_REQUEST_FIELDS, ...REQUEST_ONLY_FIELDS } })
    .registerVariable({ name: 'upstream', schema: UPSTREAM_FIELDS })
    .registerVariable({ name: 'image', schema: IMAGE_FIELDS });
}

/**
 * The environment of `limits.rules[].key` and `match`: what both /token and /v2/ know before any
 * upstream call (`request.kind` is "token" at /token), so reading anything else fails at start-up.
 */
export function limitEnvironment(): Environment {
  const { method, kind, reference } = REQUEST_ONLY_FIELDS;
  return new Environment({ unlistedVariablesAreDyn: false })
    .registerVariable('claims', 'map<string, dyn>')
    .registerVariable({ name: 'identity', schema: IDENTITY_FIELDS })
    .registerVariable({ name: 'request', schema: { ...TOKEN_REQUEST_FIELDS, method, kind, reference } });
}

interface TokenRequestVars {
  type: string;
  repository: string;
  actions: string[];
  service: string;
  clientIP: string;
  upstream: string;
}

export interface CelContext {
  claims: Record<string, unknown>;
  identity: {
    issuerName: string;
    issuer: string;
    subject: string;
    preset: string;
    namespace: string;
    serviceAccount: string;
    podName: string;
  };
  request: TokenRequestVars;
}

/** The variables of a request-time rule; `digest` and `upstream` may be getters, `tag`/`digest` absent (request.ts). */
export interface RequestCelContext extends Omit<CelContext, 'request'> {
  request: TokenRequestVars & {
    method: string;
    kind: string;
    reference: string;
    tag?: string;
    digest?: string;
    mediaType: string;
    /** CEL ints are bigints in cel-js. */
    contentLength: bigint;
  };
  upstream: { tagExists: boolean; digest: string };
  image: { verified: boolean; signers: string[] };
}

export type CompiledWhen = (ctx: CelContext | RequestCelContext) => unknown;
