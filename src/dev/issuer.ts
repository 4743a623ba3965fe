import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Config, IssuerConfig } from '../config/types.js';

/** The policy `--dev` uses: the dev issuer may do anything (shipped in policies/dev/). */
export const DEV_POLICY_PATH = fileURLToPath(new URL('../../policies/dev', import.meta.url));

export interface DevIssuer {
  issuer: IssuerConfig;
  token: string;
}

/**
 * `--dev`: an embedded issuer with an in-memory key (published as a static JWKS file, so nothing
 * listens) and one identity token, valid 12 h, to paste as the registry password.
 */
export async function createDevIssuer(config: Config, subject = 'developer'): Promise<DevIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const dir = mkdtempSync(join(tmpdir(), 'rap-dev-'));
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'dev', use: 'sig', alg: 'ES256' }] }), { mode: 0o600 });
  const iss = `${config.publicURL}/dev`;
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ name: 'registry-auth-proxy dev identity' })
    .setProtectedHeader({ alg: 'ES256', kid: 'dev', typ: 'JWT' })
    .setIssuer(iss)
    .setSubject(subject)
    .setAudience(config.service)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 12 * 3600)
    .sign(privateKey);
  return {
    issuer: { name: 'dev', issuer: iss, audiences: [config.service], jwksFile, tokenReview: false, legacyTokens: false, clockSkew: 30, timeout: 5000 },
    token,
  };
}
