import { z } from 'zod';
import { duration, durationWithin, httpURLProblem, mapping, optText, refineBy, text } from './fields.js';

/**
 * `trust:`: which repositories need which signatures before a manifest is served (issue 22). The
 * files it names (public keys, trusted_root.json) are read and parsed at start-up by trust/load.ts,
 * which reports a bad one as a ConfigError naming the file and the key.
 */

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const name = refineBy(text, (s) => (NAME.test(s) ? undefined : `"${s}" must be letters, digits, ".", "_" or "-"`));

/** A repository glob: path segments of name characters, `*` (one segment or part of one) or `**` (any number). */
function repositoryGlobProblem(s: string): string | undefined {
  if (!/^[a-z0-9._/*-]+$/.test(s)) return `"${s}" may hold only lower-case repository characters, "/", "*" and "**"`;
  if (s.split('/').some((seg) => seg === '' || (seg.includes('**') && seg !== '**')))
    return `"${s}": "**" must be a whole segment and segments must not be empty`;
  return undefined;
}

/** An anchored regular expression that compiles: it is matched against a certificate's subject. */
function regexProblem(s: string): string | undefined {
  try {
    new RegExp(`^(?:${s})$`, 'u');
    return undefined;
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
}

const keyRequirement = mapping({
  name: name.describe('what messages and image.signers call this key'),
  publicKeyFile: text.describe('PEM public key (cosign.pub): ECDSA P-256/P-384/P-521, Ed25519 or RSA'),
});

const keylessRequirement = mapping({
  name: name.optional().describe('what messages and image.signers call this identity; default "<issuer> <subject>"'),
  issuer: refineBy(text, httpURLProblem).describe(
    "the certificate's OIDC issuer, exactly (https://token.actions.githubusercontent.com)",
  ),
  subject: optText.describe("the certificate's subject (SAN), exactly: an e-mail, or a workflow URL with its ref"),
  subjectPattern: optText
    .pipe(refineBy(z.string().optional(), (s) => (s === undefined ? undefined : regexProblem(s))))
    .describe('a regular expression the whole subject must match (anchored), instead of subject'),
}).check((ctx) => {
  const { subject, subjectPattern } = ctx.value;
  if ((subject === undefined) === (subjectPattern === undefined))
    ctx.issues.push({
      code: 'custom',
      path: ['subject'],
      message: 'give exactly one of subject or subjectPattern',
      input: ctx.value,
    });
});

/** One way to satisfy a policy. */
const requirement = z.union([mapping({ key: keyRequirement }), mapping({ keyless: keylessRequirement })], {
  error: 'must be {key: {name, publicKeyFile}} or {keyless: {issuer, subject | subjectPattern}}',
});

const policy = mapping({
  name: name.describe('names the policy in refusals, audit lines and metrics'),
  repositories: z
    .array(refineBy(text, repositoryGlobProblem), { error: 'must be a list of repository globs' })
    .min(1, 'must list at least one repository glob')
    .describe('client-side repository names (upstream prefix included): "*" one segment, "**" any number'),
  mode: z
    .enum(['enforce', 'audit'], { error: 'must be enforce or audit' })
    .default('enforce')
    .describe('enforce: refuse; audit: serve and record'),
  require: z
    .array(requirement, { error: 'must be a list of {key: …} or {keyless: …}' })
    .min(1, 'must list at least one key or keyless identity')
    .describe('any one of these suffices'),
});

export const trustSchema = mapping({
  trustedRoot: optText.describe(
    'Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys), pinned; required for keyless',
  ),
  cacheTtl: durationWithin(1_000, 24 * 3_600_000, 'must be between 1s and 24h')
    .prefault('10m')
    .describe('how long a verdict is reused per digest'),
  cacheSize: z
    .number({ error: 'must be a number' })
    .int()
    .min(1)
    .max(1_000_000)
    .default(10_000)
    .describe('verdicts kept at most'),
  lookupTimeout: duration.prefault('10s').describe('deadline of each signature lookup towards the upstream'),
  policies: z
    .array(policy, { error: 'must be a list of policies' })
    .default([])
    .describe('every policy whose repositories match applies'),
}).check((ctx) => {
  const { policies, trustedRoot } = ctx.value;
  const seen = new Set<string>();
  policies.forEach((p, i) => {
    if (seen.has(p.name))
      ctx.issues.push({
        code: 'custom',
        path: ['policies', i, 'name'],
        message: `"${p.name}" is used twice`,
        input: p.name,
      });
    seen.add(p.name);
    const k = p.require.findIndex((r) => 'keyless' in r);
    if (k >= 0 && trustedRoot === undefined)
      ctx.issues.push({
        code: 'custom',
        path: ['policies', i, 'require', k, 'keyless'],
        message: 'needs trust.trustedRoot (a pinned trusted_root.json)',
        input: p,
      });
  });
});

export type TrustConfig = z.output<typeof trustSchema>;
export type TrustPolicyConfig = TrustConfig['policies'][number];
export type TrustRequirement = TrustPolicyConfig['require'][number];
