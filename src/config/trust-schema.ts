import { z } from 'zod';
import { duration, durationWithin, httpURLProblem, mapping, optText, refineBy, text } from './fields.js';

/**
 * `signatures:` (CONTRACT.md §7): which repositories need which signatures before a manifest is
 * served (issue 22), and `signatureLookup:`, how the answers are looked up and reused. The files an
 * entry names (public keys, trusted_root.json) are read and parsed at start-up by trust/load.ts,
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

/** A regular expression that compiles (JavaScript syntax, `u` flag). */
function regexProblem(s: string): string | undefined {
  try {
    new RegExp(s, 'u');
    return undefined;
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
}

/** A Fulcio certificate identity: cosign's --certificate-oidc-issuer with --certificate-identity(-regexp). */
const keylessIdentity = mapping({
  issuer: refineBy(text, httpURLProblem).describe(
    "the certificate's OIDC issuer, exactly (https://token.actions.githubusercontent.com)",
  ),
  subject: optText.describe("the certificate's subject (SAN), exactly: an e-mail, or a workflow URL with its ref"),
  // Searched, not anchored, as cosign's --certificate-identity-regexp and policy-controller's
  // subjectRegExp are: "^https://github.com/acme/" means "starts with". Anchor it yourself.
  subjectRegExp: optText
    .pipe(refineBy(z.string().optional(), (s) => (s === undefined ? undefined : regexProblem(s))))
    .describe('a regular expression the subject must match (searched: anchor with ^ and $), instead of subject'),
}).check((ctx) => {
  const { subject, subjectRegExp } = ctx.value;
  if ((subject === undefined) === (subjectRegExp === undefined))
    ctx.issues.push({
      code: 'custom',
      path: ['subject'],
      message: 'give exactly one of subject or subjectRegExp',
      input: ctx.value,
    });
});

const signatureEntry = mapping({
  name: name.describe('names the entry in refusals, audit lines and metrics'),
  repositories: z
    .array(refineBy(text, repositoryGlobProblem), { error: 'must be a list of repository globs' })
    .min(1, 'must list at least one repository glob')
    .describe('client-side repository names (upstream prefix included): "*" one segment, "**" any number'),
  mode: z
    .enum(['enforce', 'audit'], { error: 'must be enforce or audit' })
    .default('enforce')
    .describe('enforce: refuse; audit: serve and record'),
  keys: z
    .array(text, { error: 'must be a list of PEM public key files' })
    .default([])
    .describe(
      'PEM public keys (cosign.pub: ECDSA, Ed25519 or RSA), any one may sign; a key is named by its file name without extension',
    ),
  keyless: z
    .array(keylessIdentity, { error: 'must be a list of {issuer, subject | subjectRegExp}' })
    .default([])
    .describe('Fulcio certificate identities, any one may sign; verified against trustedRoot'),
  trustedRoot: optText.describe(
    'Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys), pinned: verification never goes online; required for keyless',
  ),
}).check((ctx) => {
  const { keys, keyless, trustedRoot } = ctx.value;
  if (keys.length === 0 && keyless.length === 0)
    ctx.issues.push({
      code: 'custom',
      path: ['keys'],
      message: 'list at least one key (keys) or keyless identity (keyless)',
      input: ctx.value,
    });
  if (keyless.length > 0 && trustedRoot === undefined)
    ctx.issues.push({
      code: 'custom',
      path: ['trustedRoot'],
      message: 'is required with keyless: a pinned Sigstore trusted_root.json',
      input: ctx.value,
    });
});

export const signaturesSchema = z
  .array(signatureEntry, { error: 'must be a list of {name, repositories, mode, keys, keyless, trustedRoot}' })
  .check((ctx) => {
    const seen = new Set<string>();
    ctx.value.forEach((e, i) => {
      if (seen.has(e.name))
        ctx.issues.push({ code: 'custom', path: [i, 'name'], message: `"${e.name}" is used twice`, input: e.name });
      seen.add(e.name);
    });
  });

/**
 * One verdict covers every entry naming a repository, so its lifetime and the lookup deadline are
 * one setting for all of them, not per entry (an image's verdict would otherwise expire piecemeal).
 */
export const signatureLookupSchema = mapping({
  cacheTTL: durationWithin(1_000, 24 * 3_600_000, 'must be between 1s and 24h')
    .prefault('10m')
    .describe("how long a digest's verdict is reused (a deleted signature is believed at most this long); default 10m"),
  cacheSize: z
    .number({ error: 'must be a number' })
    .int()
    .min(1)
    .max(1_000_000)
    .default(10_000)
    .describe('verdicts kept at most; default 10000'),
  timeout: duration.prefault('10s').describe('deadline of each signature lookup towards the upstream; default 10s'),
});

/** `trust:` was this feature's first shape: refused with what replaces it, so an old config does not silently lose its policy. */
export const TRUST_REPLACED =
  'replaced by signatures: (a list of {name, repositories, mode, keys: [public key files], keyless: [{issuer, subject | subjectRegExp}], trustedRoot}) and signatureLookup: {cacheTTL, cacheSize, timeout}';

export type SignatureEntry = z.output<typeof signatureEntry>;
export type KeylessIdentity = SignatureEntry['keyless'][number];
export type SignatureLookup = z.output<typeof signatureLookupSchema>;
