import { z } from 'zod';
import {
  bool,
  duration,
  httpURLProblem,
  mapping,
  optionalString,
  optText,
  refineBy,
  secretInline,
  text,
} from './fields.js';

/** The `upstream:` mapping and the `upstreams:` entries: URL, auth kinds, prefixes. */

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
    mapping(
      { type: z.literal('basic'), username: text, password: secretInline('passwordFile'), passwordFile: text },
      { hidden: ['password'] },
    ),
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
          .describe(
            "hosts (host or host:port) besides the upstream's own that may receive the proxy's credentials as a token realm",
          ),
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
  {
    error: (i) =>
      i.code === 'invalid_union' ? authTypeProblem((i.input as { type?: unknown }).type) : 'must be a mapping',
  },
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
  return /^[a-z0-9.-]+(?::\d{1,5})?$/i.test(s)
    ? undefined
    : `"${s}" must be a host or host:port, without scheme or path`;
}

function authTypeProblem(type: unknown): string {
  return typeof type === 'string' && type !== ''
    ? `"${type}" is not one of ${AUTH_TYPES}`
    : 'must be a non-empty string';
}

export const upstreamSchema = mapping({
  // Optional here: `--upstream` may give it while the file gives the rest.
  url: optionalString(text.pipe(upstreamURL)).describe(
    'base URL of the registry; may have a path prefix; no query, fragment, credentials or /v2',
  ),
  caFile: optText.describe("extra CA for the upstream's HTTPS"),
  auth: upstreamAuth
    .prefault({})
    .describe("the proxy's own credentials towards the upstream, never the client's; secrets only from files"),
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
  return /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)+$/.test(s)
    ? undefined
    : `"${s}" must be repository path components ending in "/", like "hub/"`;
}

/** Names unique, at most one entry without a prefix, no prefix a prefix of another. */
export function upstreamsProblem(list: readonly { name: string; prefix?: string }[]): string | undefined {
  const names = list.map((u) => u.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) return `name "${dup}" is used twice`;
  if (list.filter((u) => u.prefix === undefined).length > 1)
    return 'at most one entry may omit prefix (the default upstream)';
  for (const a of list)
    for (const b of list)
      if (a !== b && a.prefix !== undefined && b.prefix !== undefined && b.prefix.startsWith(a.prefix))
        return `prefixes of "${a.name}" (${a.prefix}) and "${b.name}" (${b.prefix}) overlap`;
  return undefined;
}

export const namedUpstreamSchema = mapping({
  name: refineBy(text, (s) =>
    /^[a-z0-9][a-z0-9_-]*$/.test(s) ? undefined : `"${s}" must be lower-case letters, digits, "-" or "_"`,
  ).describe('name of this upstream, unique; policies see it as request.upstream'),
  prefix: optionalString(refineBy(text, upstreamPrefixProblem)).describe(
    'repository-name prefix ending in "/" (hub/) routed here, removed upstream; absent: the default upstream',
  ),
  ...upstreamSchema.shape,
  url: text
    .pipe(upstreamURL)
    .describe('base URL of the registry; may have a path prefix; no query, fragment, credentials or /v2'),
});
