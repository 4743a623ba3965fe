import { z } from 'zod';
import {
  bool,
  duration,
  durationWithin,
  httpURLProblem,
  intBetween,
  mapping,
  nonNegative,
  optionalString,
  optText,
  refineBy,
  seconds,
  secretInline,
  text,
} from './fields.js';
import { issuerEntry } from './issuer-schema.js';
import { listenAddress, trustedProxiesProblem } from './net.js';
import { workersSetting } from './workers.js';

/**
 * The config file, described once: types, defaults, unknown-key refusal and the rules that only
 * involve the file. `resolve.ts` overlays flags and env and applies the rules that involve them;
 * `config.schema.json` is generated from this for editors (`npm run schema`).
 */

/**
 * The upstream's base URL. A path prefix is supported (a registry served under `/prefix/v2/`, as
 * Distribution's `http.prefix` does): requests get it prepended and `Location`/`Link` answers have it
 * removed. A query, fragment or credentials in the URL would reach every request or be lost: refused.
 */
function upstreamURLProblem(s: string): string | undefined {
  const p = httpURLProblem(s);
  if (p !== undefined) return p;
  const u = new URL(s);
  if (u.username || u.password) return 'must not carry credentials (use upstream.auth with a passwordFile)';
  if (u.search || u.hash || s.includes('?') || s.includes('#')) return 'must not have a query or fragment';
  if (/\/v2\/*$/.test(u.pathname)) return "is the registry's base URL, without /v2 (the proxy adds /v2/ itself)";
  return undefined;
}

/** Also used for `--upstream` and `RAP_UPSTREAM`, which may be empty strings. */
export const upstreamURL = refineBy(z.string(), upstreamURLProblem).transform((s) => s.replace(/\/+$/, ''));

const AUTH_TYPES = 'none, basic, bearer, registry-token, ecr, gar, acr';

const upstreamAuth = z.discriminatedUnion(
  'type',
  [
    mapping({ type: z.literal('none').default('none') }),
    mapping({ type: z.literal('basic'), username: text, password: secretInline('passwordFile'), passwordFile: text }, { hidden: ['password'] }),
    mapping(
      {
        type: z.literal('registry-token'),
        username: text,
        password: secretInline('passwordFile'),
        passwordFile: text,
        realm: optionalString(refineBy(text, httpURLProblem)).describe(
          "token realm to use instead of the one the upstream's challenge advertises (Harbor behind TLS or a service name)",
        ),
        realmHosts: z
          .array(refineBy(text, realmHostProblem))
          .default([])
          .describe("hosts (host or host:port) besides the upstream's own that may receive the proxy's credentials as a token realm"),
      },
      { hidden: ['password'] },
    ),
    mapping({ type: z.literal('bearer'), token: secretInline('tokenFile'), tokenFile: text }, { hidden: ['token'] }),
    mapping({
      type: z.literal('ecr'),
      region: optionalString(refineBy(text, awsRegionProblem)).describe(
        'AWS region of the ECR registry; default: the one its host names (<account>.dkr.ecr.<region>.amazonaws.com), else AWS_REGION',
      ),
    }),
    mapping({ type: z.literal('gar') }).describe(
      'Google Artifact Registry: an access token from Application Default Credentials (metadata server, GOOGLE_APPLICATION_CREDENTIALS key or external_account file) as oauth2accesstoken in the token dance',
    ),
    mapping({
      type: z.literal('acr'),
      tenant: optionalString(refineBy(text, azureTenantProblem)).describe(
        "Microsoft Entra tenant (ID or domain) of the proxy's identity; default: the credential's own (AZURE_TENANT_ID, or the tenant of the token it gets)",
      ),
    }).describe(
      'Azure Container Registry: a Microsoft Entra token from @azure/identity DefaultAzureCredential (workload identity, managed identity, AZURE_CLIENT_SECRET), exchanged for an ACR refresh token used in the token dance',
    ),
  ],
  { error: (i) => (i.code === 'invalid_union' ? authTypeProblem((i.input as { type?: unknown }).type) : 'must be a mapping') },
);

/** `eu-west-1`, `us-gov-west-1`, `cn-north-1`. */
function awsRegionProblem(s: string): string | undefined {
  return /^[a-z]{2}(?:-[a-z]+)+-\d+$/.test(s) ? undefined : `"${s}" is not an AWS region (like eu-west-1)`;
}

/** A tenant ID (GUID) or a domain (`contoso.onmicrosoft.com`): what @azure/identity accepts. */
function azureTenantProblem(s: string): string | undefined {
  return /^[0-9a-zA-Z.-]+$/.test(s) ? undefined : `"${s}" is not a Microsoft Entra tenant ID or domain`;
}

/** `auth.docker.io` or `auth.example.com:8443`: a host, never a URL. */
function realmHostProblem(s: string): string | undefined {
  return /^[a-z0-9.-]+(?::\d{1,5})?$/i.test(s) ? undefined : `"${s}" must be a host or host:port, without scheme or path`;
}

function authTypeProblem(type: unknown): string {
  return typeof type === 'string' && type !== '' ? `"${type}" is not one of ${AUTH_TYPES}` : 'must be a non-empty string';
}

export const upstreamSchema = mapping({
  // Optional here: `--upstream` may give it while the file gives the rest.
  url: optionalString(text.pipe(upstreamURL)).describe('base URL of the registry; may have a path prefix; no query, fragment, credentials or /v2'),
  caFile: optText.describe("extra CA for the upstream's HTTPS"),
  auth: upstreamAuth.prefault({}).describe("the proxy's own credentials towards the upstream, never the client's; secrets only from files"),
  timeout: duration.prefault('30s').describe('connect, headers and idle-body timeout towards the upstream'),
  followRedirects: bool
    .default(false)
    .describe(
      'true: the proxy follows blob GET/HEAD redirects to storage itself (no credentials sent there) and streams the body; false: clients get the redirect',
    ),
  registry: optionalString(refineBy(text, realmHostProblem)).describe(
    'the registry this upstream stands for in mirror mode (?ns=) and in mirror-config (docker.io for a Docker Hub pull-through cache); default: the host of url',
  ),
});

/** A repository-name prefix naming one of `upstreams`: lower-case path components, ending in `/`. */
function upstreamPrefixProblem(s: string): string | undefined {
  return /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)+$/.test(s) ? undefined : `"${s}" must be repository path components ending in "/", like "hub/"`;
}

/** Names unique, at most one entry without a prefix, no prefix a prefix of another. */
function upstreamsProblem(list: readonly { name: string; prefix?: string }[]): string | undefined {
  const names = list.map((u) => u.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) return `name "${dup}" is used twice`;
  if (list.filter((u) => u.prefix === undefined).length > 1) return 'at most one entry may omit prefix (the default upstream)';
  for (const a of list)
    for (const b of list)
      if (a !== b && a.prefix !== undefined && b.prefix !== undefined && b.prefix.startsWith(a.prefix))
        return `prefixes of "${a.name}" (${a.prefix}) and "${b.name}" (${b.prefix}) overlap`;
  return undefined;
}

const namedUpstreamSchema = mapping({
  name: refineBy(text, (s) => (/^[a-z0-9][a-z0-9_-]*$/.test(s) ? undefined : `"${s}" must be lower-case letters, digits, "-" or "_"`)).describe(
    'name of this upstream, unique; policies see it as request.upstream',
  ),
  prefix: optionalString(refineBy(text, upstreamPrefixProblem)).describe(
    'repository-name prefix ending in "/" (hub/) routed here, removed upstream; absent: the default upstream',
  ),
  ...upstreamSchema.shape,
  url: text.pipe(upstreamURL).describe('base URL of the registry; may have a path prefix; no query, fragment, credentials or /v2'),
});

/** Lifetime of issued tokens, in ms; also checks `--token-ttl`. */
export const tokenTTLRange = refineBy(z.number(), (ms) => (ms < 60_000 || ms > 24 * 3_600_000 ? 'must be between 1m and 24h' : undefined));

export const signingAlgorithm = z.enum(['ES256', 'RS256', 'EdDSA'], { error: 'must be one of ES256, RS256, EdDSA' });

// Durations come out in ms, except tokens.ttl and tokens.refreshTTL, which are claims: seconds.
const tokensSchema = mapping({
  signingKeyFile: optText.describe(
    'PEM private key, or a directory of them (current.pem signs; the others are published, for rotation); absent: an ephemeral key and a warning',
  ),
  certificateFile: optText.describe('certificate of the signing key: adds x5c so Distribution can verify issued tokens'),
  algorithm: signingAlgorithm.default('ES256').describe("algorithm of the ephemeral key; a key file's type decides otherwise"),
  ttl: duration.pipe(tokenTTLRange).transform(seconds).prefault('5m').describe('lifetime of issued tokens, 1m … 24h'),
  // Refresh tokens are bearer credentials `docker login` stores on disk: bounded even when the
  // identity token is long-lived. Absent: 12h (token/issue.ts).
  refreshTTL: refineBy(duration, (ms) =>
    ms !== 0 && (ms < 60_000 || ms > 7 * 24 * 3_600_000) ? 'must be 0 (no refresh tokens) or between 1m and 7d' : undefined,
  )
    .transform(seconds)
    .optional()
    .describe("longest life of a refresh token (never past the identity token's exp), 1m … 7d; 0: none issued; default 12h"),
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
        ctx.issues.push({ code: 'custom', path: ['burst'], message: 'must be at least 1 when rate is set', input: ctx.value });
    })
    .transform(({ rate = defaults.rate, burst }) => ({ rate, burst: burst ?? Math.max(defaults.burst, Math.ceil(rate * 2)) }))
    .prefault({})
    .describe(`${description} {rate: per second, burst}; rate 0 disables; default {rate: ${defaults.rate}, burst: ${defaults.burst}}`);
}

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
  tokenBodyTimeout: durationWithin(100, 300_000, 'must be between 100ms and 5m').prefault('10s').describe('a POST /token form not complete by then gets 408'),
  // Absent: max(5m, 2 × upstream.timeout), set by resolve.ts, which also checks it against the upstream's.
  idleTimeout: refineBy(duration, (ms) => (ms !== 0 && ms < 500 ? 'must be at least 500ms, or 0 to disable' : undefined))
    .optional()
    .describe(
      'close a client connection with no bytes moving either way for this long; 0 = never; must exceed upstream.timeout; default max(5m, 2 × upstream.timeout)',
    ),
  // Each client connection costs a file descriptor (and may hold an upstream socket): on Linux the
  // cap is lowered at start-up to what the process's open-files limit allows (server/connections.ts).
  maxConnections: intBetween(0, 1_000_000, ' (0 = unlimited)')
    .default(2048)
    .describe("client connections open at once, all clients together, per process; lowered to what the open-files limit allows; 0 = only that limit's"),
  // One address may use an eighth of the total: a node pulling many images in parallel needs tens,
  // so a single peer cannot starve everyone else. Behind an ingress, list it in trustedProxies.
  maxConnectionsPerClient: intBetween(0, 1_000_000, ' (0 = unlimited)')
    .default(256)
    .describe('client connections open at once per TCP peer address (trustedProxies exempt); 0 = unlimited'),
});

const TRUSTED_PROXIES = 'must be a list of IP addresses or CIDRs';

export const configFileSchema = mapping({
  listen: optionalString(text.pipe(listenAddress)).describe('host:port to listen on; default 0.0.0.0:8080 (--dev: 127.0.0.1:8080)'),
  publicURL: optionalString(refineBy(text, httpURLProblem)).describe(
    'base URL clients reach the proxy at; the token realm is <publicURL>/token; required unless listen is loopback',
  ),
  service: optText.describe('token service name, the aud of issued tokens; default: host of publicURL'),
  tls: mapping({ certFile: text, keyFile: text }).optional().describe('serve HTTPS with this certificate and key'),
  upstream: upstreamSchema.optional().describe('the registry behind the proxy'),
  upstreams: refineBy(z.array(namedUpstreamSchema, { error: 'must be a list' }), upstreamsProblem)
    .optional()
    .describe('several registries behind one proxy, chosen by repository-name prefix; the entry without prefix (or upstream) is the default'),
  issuers: z.array(issuerEntry, { error: 'must be a list' }).optional().describe('identity token issuers the proxy trusts'),
  tokens: tokensSchema.prefault({}).describe('registry tokens the proxy issues'),
  policies: optText.describe('policy file or directory; default ./policies if it exists, else the shipped policies/default.yaml'),
  anonymous: bool.default(false).describe('true: unauthenticated requests are evaluated by policy with identity.issuerName == "anonymous"'),
  explainDenials: bool.default(true).describe("refused clients are told the identity, the refused actions and the rule; false: Distribution's generic message"),
  limits: limitsSchema.prefault({}).describe('rate limits, request-size limits, timeouts and connection caps'),
  trustedProxies: refineBy(z.array(z.string({ error: TRUSTED_PROXIES }), { error: TRUSTED_PROXIES }), trustedProxiesProblem)
    .default([])
    .describe('ingress/load-balancer addresses or CIDRs whose X-Forwarded-For is believed'),
  shutdownGrace: duration.prefault('25s').describe('on SIGTERM: time for in-flight requests before connections are cut'),
  workers: workersSetting,
  logLevel: optText.describe('pino level: trace, debug, info, warn, error, fatal or silent; default info'),
});

export type ConfigFile = z.output<typeof configFileSchema>;
