import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toTrustMaterial } from '@sigstore/verify';
import { ConfigError } from '../config/errors.js';
import type { KeylessIdentity, SignatureEntry } from '../config/trust-schema.js';
import { globToRegExp } from './match.js';
import type { KeyAnchor, KeylessAnchor, TrustPolicy } from './types.js';

/**
 * `signatures:` made usable, once, at start-up: public keys parsed, each trusted root parsed and
 * turned into trust material (so a root @sigstore/verify cannot use fails here, not at the first
 * pull). A bad file is a ConfigError naming the file and the key that points at it.
 */

export interface LoadedTrust {
  policies: TrustPolicy[];
  /** Parsed trusted roots by file path (entries naming the same file share it). */
  roots: Map<string, TrustedRoot>;
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

function trustedRoot(file: string | undefined, path: string, at: string): TrustedRoot {
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

/** A key's name in messages and `image.signers`: its file name without the extension (/keys/cosign.pub → cosign). */
export function keyName(path: string): string {
  const base = basename(path);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

function keylessAnchor(k: KeylessIdentity): KeylessAnchor {
  return k.subject !== undefined
    ? { kind: 'keyless', name: `${k.issuer}, subject ${k.subject}`, issuer: k.issuer, subject: k.subject }
    : {
        kind: 'keyless',
        name: `${k.issuer}, subject matching ${k.subjectRegExp!}`,
        issuer: k.issuer,
        subject: new RegExp(k.subjectRegExp!, 'u'),
      };
}

const der = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });

export function loadTrust(entries: readonly Readonly<SignatureEntry>[], file?: string): LoadedTrust {
  // One name means one key: two different keys both called "cosign" would make "cosign" in image.signers ambiguous.
  const byName = new Map<string, KeyAnchor & { at: string; path: string }>();
  const roots = new Map<string, TrustedRoot>();
  const key = (path: string, at: string): KeyAnchor => {
    const name = keyName(path);
    const parsed = publicKey(file, path, at);
    const known = byName.get(name);
    if (known && !der(known.key).equals(der(parsed)))
      throw new ConfigError(
        file,
        at,
        `${path} and ${known.path} (${known.at}) are different keys with the same name "${name}" (a key is named by its file name without extension): rename one file`,
      );
    if (known) return known;
    const anchor = { kind: 'key' as const, name, key: parsed };
    byName.set(name, { ...anchor, at, path });
    return anchor;
  };
  const policies = entries.map((e, i): TrustPolicy => {
    const at = `signatures[${i}]`;
    if (e.trustedRoot !== undefined && !roots.has(e.trustedRoot))
      roots.set(e.trustedRoot, trustedRoot(file, e.trustedRoot, `${at}.trustedRoot`));
    return {
      name: e.name,
      mode: e.mode,
      repositories: e.repositories,
      patterns: e.repositories.map(globToRegExp),
      require: [...e.keys.map((k, j) => key(k, `${at}.keys[${j}]`)), ...e.keyless.map(keylessAnchor)],
      ...(e.trustedRoot !== undefined ? { root: e.trustedRoot } : {}),
    };
  });
  return { policies, roots };
}
