import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial } from '@sigstore/verify';
import { ConfigError } from '../config/errors.js';
import type { TrustConfig } from '../config/types.js';
import type { TrustRequirement } from '../config/trust-schema.js';
import { globToRegExp } from './match.js';
import type { Anchor, KeyAnchor, KeylessAnchor, TrustPolicy } from './types.js';

/**
 * `trust:` made usable, once, at start-up: public keys parsed, the trusted root parsed and turned
 * into trust material (so a root @sigstore/verify cannot use fails here, not at the first pull).
 * A bad file is a ConfigError naming the file and the key that points at it.
 */

export interface LoadedTrust {
  policies: TrustPolicy[];
  keys: KeyAnchor[];
  keyless: KeylessAnchor[];
  root?: TrustedRoot;
}

function read(file: string | undefined, path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(file, what, `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** cosign's key types: ECDSA (P-256, P-384, P-521), Ed25519, RSA. */
const KEY_TYPES = new Set(['ec', 'ed25519', 'rsa']);

function publicKey(file: string | undefined, path: string, at: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(read(file, path, at));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(file, at, `${path} is not a PEM public key: ${(err as Error).message}`);
  }
  if (!KEY_TYPES.has(key.asymmetricKeyType ?? ''))
    throw new ConfigError(file, at, `${path}: ${key.asymmetricKeyType} keys are not supported (ECDSA, Ed25519 or RSA)`);
  return key;
}

function trustedRoot(file: string | undefined, path: string): TrustedRoot {
  const at = 'trust.trustedRoot';
  try {
    const root = TrustedRoot.fromJSON(JSON.parse(read(file, path, at)));
    if (root.certificateAuthorities.length === 0 && root.tlogs.length === 0)
      throw new Error('it lists no certificate authority and no transparency log');
    toTrustMaterial(root);
    return root;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(file, at, `${path} is not a usable Sigstore trusted_root.json: ${(err as Error).message}`);
  }
}

function keylessName(r: Extract<TrustRequirement, { keyless: unknown }>['keyless']): string {
  return r.name ?? `${r.issuer} ${r.subject ?? r.subjectPattern ?? ''}`;
}

/** Each anchor once by name; the same name must mean the same thing everywhere. */
function anchorOf(
  r: TrustRequirement,
  at: string,
  file: string | undefined,
  byName: Map<string, Anchor & { at: string; source: string }>,
): Anchor {
  const source =
    'key' in r
      ? `key ${r.key.publicKeyFile}`
      : `keyless ${r.keyless.issuer} ${r.keyless.subject ?? `/${r.keyless.subjectPattern}/`}`;
  const name = 'key' in r ? r.key.name : keylessName(r.keyless);
  const known = byName.get(name);
  if (known) {
    if (known.source !== source)
      throw new ConfigError(file, at, `the name "${name}" is already used for something else at ${known.at}`);
    return known;
  }
  const anchor: Anchor =
    'key' in r
      ? { kind: 'key', name, key: publicKey(file, r.key.publicKeyFile, `${at}.key.publicKeyFile`) }
      : {
          kind: 'keyless',
          name,
          issuer: r.keyless.issuer,
          subject: r.keyless.subject ?? new RegExp(`^(?:${r.keyless.subjectPattern!})$`, 'u'),
        };
  byName.set(name, { ...anchor, at, source });
  return anchor;
}

export function loadTrust(trust: Readonly<TrustConfig>, file?: string): LoadedTrust {
  const byName = new Map<string, Anchor & { at: string; source: string }>();
  const policies = trust.policies.map((p, i): TrustPolicy => ({
    name: p.name,
    mode: p.mode,
    repositories: p.repositories,
    patterns: p.repositories.map(globToRegExp),
    require: p.require.map((r, j) => anchorOf(r, `trust.policies[${i}].require[${j}]`, file, byName)),
  }));
  const anchors = [...byName.values()];
  return {
    policies,
    keys: anchors.filter((a): a is KeyAnchor & { at: string; source: string } => a.kind === 'key'),
    keyless: anchors.filter((a): a is KeylessAnchor & { at: string; source: string } => a.kind === 'keyless'),
    ...(trust.trustedRoot !== undefined ? { root: trustedRoot(file, trust.trustedRoot) } : {}),
  };
}
