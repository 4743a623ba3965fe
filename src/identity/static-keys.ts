import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import { localResolver, type KeySource } from './verification-keys.js';

/** `jwksFile`: a JWKS JSON document or one or more PEM public keys (or certificates). No network. */
export function staticKeySource(file: string): KeySource {
  let jwks: JSONWebKeySet;
  try {
    jwks = readKeyFile(file);
  } catch (err) {
    throw new KeyFileError(file, err);
  }
  const resolver = localResolver(jwks);
  return { resolver, ready: () => true, refresh: async () => {} };
}

/** A `jwksFile` that cannot be used; `problem` is said for a person (no errno codes). */
export class KeyFileError extends Error {
  readonly problem: string;
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException).code;
    const problem =
      code === 'ENOENT'
        ? `${file} does not exist`
        : code === 'EACCES'
          ? `${file} cannot be read (permission denied)`
          : (cause as Error).message.startsWith(file)
            ? (cause as Error).message
            : `${file}: ${(cause as Error).message}`;
    super(problem);
    this.name = 'KeyFileError';
    this.problem = problem;
  }
}

function readKeyFile(file: string): JSONWebKeySet {
  const text = readFileSync(file, 'utf8');
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as JSONWebKeySet;
    if (!Array.isArray(doc.keys)) throw new Error(`${file}: not a JWKS (no "keys" list)`);
    return doc;
  }
  const blocks = trimmed.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g);
  if (!blocks || blocks.length === 0) throw new Error(`${file}: neither a JWKS nor PEM keys`);
  const keys: JWK[] = [];
  for (const pem of blocks) {
    if (/PRIVATE KEY/.test(pem)) throw new Error(`${file}: contains a private key; give public keys only`);
    const key = createPublicKey(pem);
    keys.push(key.export({ format: 'jwk' }) as JWK);
  }
  return { keys };
}
