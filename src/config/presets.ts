import { z } from 'zod';

/** Issuer presets: configuration data, so it lives here; identity/ maps claims by preset. */

export const presetSchema = z.enum(['kubernetes', 'github-actions', 'gitlab', 'google'], {
  error: 'must be one of kubernetes, github-actions, gitlab, google',
});
export type Preset = z.output<typeof presetSchema>;
export const PRESETS: readonly Preset[] = presetSchema.options;

/** Well-known issuer URLs, used when an issuer entry names a preset but no `issuer`. */
export const PRESET_ISSUERS: Readonly<Partial<Record<Preset, string>>> = {
  'github-actions': 'https://token.actions.githubusercontent.com',
  gitlab: 'https://gitlab.com',
  google: 'https://accounts.google.com',
};

/**
 * Issuers known to publish their keys on another origin. A discovered `jwks_uri` must be on the
 * issuer's own origin (identity/oidc.ts), so these are pinned here instead of trusting discovery;
 * used when an entry sets neither `jwksURI` nor `jwksFile`.
 */
export const WELL_KNOWN_JWKS_URIS: Readonly<Record<string, string>> = {
  'https://accounts.google.com': 'https://www.googleapis.com/oauth2/v3/certs',
};
