import { z } from 'zod';
import {
  bool,
  duration,
  durationWithin,
  httpURLProblem,
  intBetween,
  logLevel,
  mapping,
  nonNegative,
  optionalString,
  optText,
  refineBy,
  seconds,
  text,
} from './fields.js';
import { issuerEntry } from './issuer-schema.js';
import { signatureLookupSchema, signaturesSchema, TRUST_REPLACED } from './trust-schema.js';
import { auditSchema } from './audit-schema.js';
import { tracingSchema } from './tracing-schema.js';
import { namedUpstreamSchema, upstreamSchema, upstreamsProblem } from './upstream-schema.js';
import { listenAddress, trustedProxiesProblem } from './net.js';
import { workersSetting } from './workers.js';
import { limitRulesSchema, limitStoreSchema } from './limit-rules-schema.js';

/**
 * The config file, described once: types, defaults, unknown-key refusal and the rules that only
 * involve the file. `resolve.ts` overlays flags and env and applies the rules that involve them;
 * `config.schema.json` is generated from this for editors (`npm run schema`).
 */

/** Lifetime of issued tokens, in ms; also checks `--token-ttl`. */
export const tokenTTLRange = refineBy(z.number(), (ms) =>
  ms < 60_000 || ms > 24 * 3_600_000 ? 'must be between 1m and 24h' : undefined,
);

export const signingAlgorithm = z.enum(['ES256', 'RS256', 'EdDSA'], { error: 'must be one of ES256, RS256, EdDSA' });

// Durations come out in ms, except tokens.ttl and tokens.refreshTTL, which are claims: seconds.
const tokensSchema = mapping({
  signingKeyFile: optText.describe(
    'PEM private key, or a directory of them (current.pem signs; the others are published, for rotation); absent: an ephemeral key and a warning',
  ),
  certificateFile: optText.describe(
    'certificate of the signing key: adds x5c so Distribution can verify issued tokens',
  ),
  algorithm: signingAlgorithm
    .default('ES256')
    .describe("algorithm of the ephemeral key; a key file's type decides otherwise"),
  ttl: duration.pipe(tokenTTLRange).transform(seconds).prefault('5m').describe('lifetime of issued tokens, 1m … 24h'),
  // Refresh tokens are bearer credentials `docker login` stores on disk: bounded even when the
  // identity token is long-lived. Absent: 12h (token/issue.ts).
  refreshTTL: refineBy(duration, (ms) =>
    ms !== 0 && (ms < 60_000 || ms > 7 * 24 * 3_600_000)
      ? 'must be 0 (no refresh tokens) or between 1m and 7d'
      : undefined,
  )
    .transform(seconds)
    .optional()
    .describe(
      "longest life of a refresh token (never past the identity token's exp), 1m … 7d; 0: none issued; default 12h",
    ),
});

/** A token bucket: `rate` requests per second on average, bursts of up to `burst`. `rate: 0` disables it. */
function rateLimit(defaults: { rate: number; burst: number }, description: string) {
  return mapping(
    { rate: nonNegative.optional(), burst: nonNegative.optional() },
    { notAMapping: 'must be a mapping {rate, burst} (requests per second; rate 0 disables)' },
  )
    .check((ctx) => {
      const { rate = defaults.rate, burst } = ctx.value;
      if (rate > 0 && burst !== undefined && burst < 1)
        ctx.issues.push({
          code: 'custom',
          path: ['burst'],
          message: 'must be at least 1 when rate is set',
          input: ctx.value,
        });
    })
    .transform(({ rate = defaults.rate, burst }) => ({
      rate,
      burst: burst ?? Math.max(defaults.burst, Math.ceil(rate * 2)),
    }))
    .prefault({})
    .describe(
      `${description} {rate: per second, burst}; rate 0 disables; default {rate: ${defaults.rate}, burst: ${defaults.burst}}`,
    );
}

/** Manifest media types a PUT may carry by default: OCI image manifest and index (artifacts are image manifests with an artifactType since image-spec 1.1, which dropped the artifact manifest), Docker schema 2 manifest and list. */
export const DEFAULT_MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

const MEDIA_TYPES = 'must be a list of media types like application/vnd.oci.image.manifest.v1+json';

const limitsSchema = mapping({
  // Guards identity verification (signatures, JWKS refetches, TokenReview calls) against a flood of
  // bad tokens. A verified caller is given its token back and counted per identity instead, so the
  // CI jobs behind one NAT address do not share this budget. Behind an ingress, list it in trustedProxies.
  tokenPerClient: rateLimit(
    { rate: 20, burst: 60 },
    '/token attempts per client IP that are unauthenticated, anonymous or fail (verified callers count per identity instead)',
  ),
  // Well above a client that fetches a token per registry request (the OCI conformance suite, many
  // scripts: ~50/s for seconds); bounds a single identity's share of tokenGlobal.
  tokenPerIdentity: rateLimit({ rate: 100, burst: 300 }, '/token requests per verified identity (issuer + subject)'),
  // Protects the issuer and the CPU: every request admitted to do work counts, whoever sends it.
  tokenGlobal: rateLimit({ rate: 2000, burst: 4000 }, '/token requests of all clients together'),
  maxHeaderBytes: intBetween(4096, 1 << 20)
    .default(16 * 1024)
    .describe('largest request head (request line + headers) accepted, in bytes; larger gets 431'),
  // Docker, podman and containerd send 5–20 header lines; an ingress adds about as many again.
  maxHeaderCount: intBetween(32, 10_000, ' (header lines per request)')
    .default(100)
    .describe('most header lines in one request; more gets 431 (never truncated)'),
  // A token form is a few hundred bytes sent with the head: seconds are plenty, even on slow links.
  tokenBodyTimeout: durationWithin(100, 300_000, 'must be between 100ms and 5m')
    .prefault('10s')
    .describe('a POST /token form not complete by then gets 408'),
  // Absent: max(5m, 2 × upstream.timeout), set by resolve.ts, which also checks it against the upstream's.
  idleTimeout: refineBy(duration, (ms) =>
    ms !== 0 && ms < 500 ? 'must be at least 500ms, or 0 to disable' : undefined,
  )
    .optional()
    .describe(
      'close a client connection with no bytes moving either way for this long; 0 = never; must exceed upstream.timeout; default max(5m, 2 × upstream.timeout)',
    ),
  // What Distribution accepts (maxManifestBodySize); a rule reading a manifest PUT's request.digest holds this much per push in memory.
  manifestMaxBytes: intBetween(1024, 64 << 20, ' (bytes)')
    .default(4 << 20)
    .describe(
      'largest manifest PUT body accepted, in bytes; larger gets 413 before the upstream sees a byte; default 4 MiB',
    ),
  manifestMediaTypes: z
    .array(z.string({ error: MEDIA_TYPES }).regex(/^[\w.+-]+\/[\w.+-]+$/, MEDIA_TYPES), { error: MEDIA_TYPES })
    .min(1, MEDIA_TYPES)
    .default(DEFAULT_MANIFEST_MEDIA_TYPES)
    .describe(
      'Content-Types a manifest PUT may carry; another gets 415; default OCI image manifest and index, Docker schema 2 manifest and list',
    ),
  tagLookupTTL: durationWithin(0, 300_000, 'must be between 0 and 5m')
    .prefault('5s')
    .describe(
      "request-time rules: how long the upstream's answer for a tag (upstream.tagExists, upstream.digest) is reused; 0 = ask every time",
    ),
  tagLockWait: durationWithin(100, 300_000, 'must be between 100ms and 5m')
    .prefault('10s')
    .describe(
      'request-time rules reading upstream facts: how long a push or delete waits for another one of the same tag in this process; then 503',
    ),
  // Each client connection costs a file descriptor (and may hold an upstream socket): on Linux the
  // cap is lowered at start-up to what the process's open-files limit allows (server/connections.ts).
  maxConnections: intBetween(0, 1_000_000, ' (0 = unlimited)')
    .default(2048)
    .describe(
      "client connections open at once, all clients together, per process; lowered to what the open-files limit allows; 0 = only that limit's",
    ),
  // One address may use an eighth of the total: a node pulling many images in parallel needs tens,
  // so a single peer cannot starve everyone else. Behind an ingress, list it in trustedProxies.
  maxConnectionsPerClient: intBetween(0, 1_000_000, ' (0 = unlimited)')
    .default(256)
    .describe('client connections open at once per TCP peer address (trustedProxies exempt); 0 = unlimited'),
  rules: limitRulesSchema,
  store: limitStoreSchema.describe(
    'where limits.rules count: this process, the primary of workers: N, or Redis/Valkey',
  ),
});

const TRUSTED_PROXIES = 'must be a list of IP addresses or CIDRs';

export const configFileSchema = mapping(
  {
    listen: optionalString(text.pipe(listenAddress)).describe(
      'host:port to listen on; default 0.0.0.0:8080 (--dev: 127.0.0.1:8080)',
    ),
    publicURL: optionalString(refineBy(text, httpURLProblem)).describe(
      'base URL clients reach the proxy at; the token realm is <publicURL>/token; required unless listen is loopback',
    ),
    service: optText.describe('token service name, the aud of issued tokens; default: host of publicURL'),
    tls: mapping({ certFile: text, keyFile: text }).optional().describe('serve HTTPS with this certificate and key'),
    upstream: upstreamSchema.optional().describe('the registry behind the proxy'),
    upstreams: refineBy(z.array(namedUpstreamSchema, { error: 'must be a list' }), upstreamsProblem)
      .optional()
      .describe(
        'several registries behind one proxy, chosen by repository-name prefix; the entry without prefix (or upstream) is the default',
      ),
    issuers: z
      .array(issuerEntry, { error: 'must be a list' })
      .optional()
      .describe('identity token issuers the proxy trusts'),
    tokens: tokensSchema.prefault({}).describe('registry tokens the proxy issues'),
    policies: optText.describe(
      'policy file or directory; default ./policies if it exists, else the shipped policies/default.yaml',
    ),
    anonymous: bool
      .default(false)
      .describe('true: unauthenticated requests are evaluated by policy with identity.issuerName == "anonymous"'),
    explainDenials: bool
      .default(true)
      .describe(
        "refused clients are told the identity, the refused actions and the rule; false: Distribution's generic message",
      ),
    limits: limitsSchema.prefault({}).describe('rate limits, request-size limits, timeouts and connection caps'),
    signatures: signaturesSchema
      .optional()
      .describe(
        'signatures (cosign key or keyless, verified offline) that repositories need before a manifest is served; every entry naming a repository applies',
      ),
    signatureLookup: signatureLookupSchema
      .prefault({})
      .describe('signatures: how long a verdict is reused and how long a lookup may take'),
    trust: z.never({ error: TRUST_REPLACED }).optional().describe(`no longer read: ${TRUST_REPLACED}`),
    audit: auditSchema
      .prefault({})
      .describe('typed audit events: the sinks they go to and the identity claims they carry'),
    tracing: tracingSchema
      .optional()
      .describe('OpenTelemetry traces of /token and /v2/ requests, sent over OTLP/HTTP; absent: off'),
    trustedProxies: refineBy(
      z.array(z.string({ error: TRUSTED_PROXIES }), { error: TRUSTED_PROXIES }),
      trustedProxiesProblem,
    )
      .default([])
      .describe('ingress/load-balancer addresses or CIDRs whose X-Forwarded-For is believed'),
    shutdownGrace: duration
      .prefault('25s')
      .describe('on SIGTERM: time for in-flight requests before connections are cut'),
    workers: workersSetting,
    logLevel: optionalString(logLevel).describe(
      'pino level: trace, debug, info, warn, error, fatal or silent; default info',
    ),
  },
  { hidden: ['trust'] },
);

export type ConfigFile = z.output<typeof configFileSchema>;
