import { z } from 'zod';
import { bool, duration, httpURLProblem, mapping, optionalString, optText, refineBy, seconds, text } from './fields.js';
import { DEFAULT_CLOCK_SKEW } from './duration.js';
import { parseOrThrow } from './issues.js';
import { PRESET_ISSUERS, presetSchema, WELL_KNOWN_JWKS_URIS } from './presets.js';

/** One `issuers[]` entry: the only place an issuer's defaults are written down. */

/** The pseudo-issuer of legacy (secret-based) service-account tokens, which carry no URL. */
const LEGACY_SA_ISSUER = 'kubernetes/serviceaccount';

/** Letters, digits, ".", "_" and "-": policies compare it, logs and metrics label by it. */
export const ISSUER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const AUDIENCES = 'must be a non-empty list of strings';

const url = refineBy(text, httpURLProblem);

const tokenReviewMapping = mapping({
  url: optionalString(url).describe(
    'API server base URL; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT',
  ),
  caFile: optText,
  bearerTokenFile: optText,
  cacheTTL: duration.prefault('30s').describe('how long an answer is reused'),
});

/** `false`, `true` (all defaults) or the mapping; `true` becomes the mapping's defaults. */
const tokenReview = z
  .union([z.boolean(), tokenReviewMapping], {
    error: 'must be false, true or a mapping {url, caFile, bearerTokenFile, cacheTTL}',
  })
  .transform((tr) => (tr === true ? tokenReviewMapping.parse({}) : tr));

// Durations come out in ms, except clockSkew: seconds, as JWT times are.
const entryShape = mapping({
  name: refineBy(text, (n) => (ISSUER_NAME.test(n) ? undefined : 'use letters, digits, ".", "_" and "-"')).describe(
    'unique; policies see it as identity.issuerName',
  ),
  issuer: optText.describe("must equal the token's iss exactly; presets with one well-known issuer may omit it"),
  preset: optionalString(presetSchema).describe('maps identity fields (and the issuer URL) for a known kind of issuer'),
  // Absent: [service], filled in by resolve.ts.
  audiences: z
    .array(text, { error: AUDIENCES })
    .min(1, AUDIENCES)
    .optional()
    .describe("the token's aud must contain one of these; default [service]"),
  jwksURI: optionalString(url).describe(
    'override of discovery; needed when the keys are on another origin than the issuer',
  ),
  jwksFile: optText.describe('static JWKS or PEM public key(s): no network'),
  caFile: optText.describe('CA for discovery and JWKS HTTPS'),
  bearerTokenFile: optText.describe(
    "sent to discovery/JWKS on the issuer's origin (Kubernetes without anonymous discovery)",
  ),
  tokenReview: tokenReview
    .prefault(false)
    .describe('also ask Kubernetes (TokenReview): false, true or {url, caFile, bearerTokenFile, cacheTTL}'),
  legacyTokens: bool
    .default(false)
    .describe('with tokenReview, on an entry with issuer: kubernetes/serviceaccount: accept secret-based tokens'),
  clockSkew: duration.transform(seconds).prefault(DEFAULT_CLOCK_SKEW).describe('allowed clock skew'),
  timeout: duration.prefault('5s').describe('deadline of each discovery, JWKS or TokenReview call; then fail closed'),
});

type Entry = z.output<typeof entryShape>;

/** Cross-field rules of one entry, checked once every key has the right type. */
function entryProblem(e: Entry): { key: keyof Entry; problem: string } | undefined {
  const issuer = e.issuer ?? (e.preset ? PRESET_ISSUERS[e.preset] : undefined);
  if (issuer === undefined) return { key: 'issuer', problem: 'is required' };
  if (e.legacyTokens && !e.tokenReview) {
    return {
      key: 'legacyTokens',
      problem: 'requires tokenReview: only the API server can tell whether a legacy token is still valid',
    };
  }
  if (issuer === LEGACY_SA_ISSUER) {
    return e.legacyTokens
      ? undefined
      : {
          key: 'issuer',
          problem: `"${LEGACY_SA_ISSUER}" (legacy secret tokens) requires legacyTokens: true and tokenReview`,
        };
  }
  const p = httpURLProblem(issuer);
  return p === undefined ? undefined : { key: 'issuer', problem: p };
}

export const issuerEntry = entryShape
  .check((ctx) => {
    const p = entryProblem(ctx.value);
    if (p) ctx.issues.push({ code: 'custom', path: [p.key], message: p.problem, input: ctx.value });
  })
  .transform((e) => {
    const issuer = e.issuer ?? PRESET_ISSUERS[e.preset!]!;
    // Google serves its keys on another origin, and a discovered jwks_uri must be on the issuer's: pinned.
    const jwksURI = e.jwksURI ?? (e.jwksFile === undefined ? WELL_KNOWN_JWKS_URIS[issuer] : undefined);
    return { ...e, issuer, ...(jwksURI !== undefined ? { jwksURI } : {}) };
  });

export type IssuerConfig = Readonly<
  Omit<z.output<typeof issuerEntry>, 'audiences'> & {
    /** The token's `aud` must contain one of these. Never empty after load. */
    audiences: string[];
    /**
     * Not a config key: the Kubernetes API server URL that in-cluster mode found. Its origin may
     * receive `bearerTokenFile` (besides the issuer's own origin and the TokenReview URL's).
     */
    apiServer?: string;
  }
>;

/**
 * A complete issuer from an entry plus its audiences: how flags, in-cluster mode and `--dev` build
 * theirs, so every issuer gets the same defaults. Throws a ConfigError at `keyPath` when invalid.
 */
export function issuerConfig(
  entry: z.input<typeof issuerEntry> & { audiences: string[] },
  where: { keyPath: string; file?: string },
  extra: { apiServer?: string } = {},
): IssuerConfig {
  return { ...parseOrThrow(issuerEntry, entry, where.file, where.keyPath), audiences: entry.audiences, ...extra };
}
