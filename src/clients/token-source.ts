import { readFileSync, existsSync } from 'node:fs';
import { decodeJwt } from 'jose';

/** Where workloads find their identity token (CONTRACT §1), in order. */
export const DEFAULT_TOKEN_FILES = ['/var/run/secrets/tokens/registry-token', '/var/run/secrets/kubernetes.io/serviceaccount/token'];

export class TokenSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenSourceError';
  }
}

/**
 * Reads the identity token afresh on every call (projected tokens rotate under us): the file named
 * by RAP_TOKEN_FILE, else the first default that exists.
 */
export function readIdentityToken(env: NodeJS.ProcessEnv = process.env): { token: string; file: string } {
  const candidates = env.RAP_TOKEN_FILE ? [env.RAP_TOKEN_FILE] : DEFAULT_TOKEN_FILES;
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new TokenSourceError(`cannot read identity token file ${file}: ${(err as Error).message}`);
    }
    if (!token) throw new TokenSourceError(`identity token file ${file} is empty`);
    return { token, file };
  }
  throw new TokenSourceError(`no identity token file found (looked at ${candidates.join(', ')}; set RAP_TOKEN_FILE)`);
}

/** The token's `exp` in epoch seconds, decoded without verification (for cache durations only). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The username clients send with an identity token: never empty (containerd would switch to refresh_token), never `<token>`. */
export const DEFAULT_USERNAME = 'registry-auth-proxy';
