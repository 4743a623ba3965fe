import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { stringify as toYaml } from 'yaml';
import { issuerConfig } from '../config/issuer-schema.js';
import type { Config, IssuerConfig } from '../config/types.js';
import { DEV_ISSUER_NAME, type DevPaths } from './defaults.js';

interface DevIssuer {
  issuer: IssuerConfig;
  token: string;
  /** When the token expires (seconds since the epoch). */
  expiresAt: number;
}

/** Lifetime of the dev identity token: a working day. */
const DEV_TOKEN_TTL = 12 * 3600;

/** Writes a file atomically with owner-only permissions (it holds a key or a token). */
function writePrivateFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The dev issuer as `verify` and `serve` read it: a static JWKS file, so nothing listens. Pure. */
function devIssuerConfig(config: Pick<Config, 'publicURL' | 'service'>, jwksFile: string): IssuerConfig {
  return issuerConfig(
    { name: DEV_ISSUER_NAME, issuer: `${config.publicURL}/dev`, audiences: [config.service], jwksFile },
    { keyPath: 'issuers' },
  );
}

/**
 * `--dev`: an embedded issuer whose key lives in the state directory (kept across runs, so earlier
 * tokens stay valid and `verify --dev` can check them), and one fresh identity token, valid 12 h,
 * written to `paths.token` (0600) to paste as the registry password. The token is never printed:
 * terminals and CI logs get scrolled back and shared.
 */
export async function createDevIssuer(config: Config, paths: DevPaths, subject = 'developer'): Promise<DevIssuer> {
  const privateJwk = await loadOrCreateIssuerKey(paths.issuerKey);
  const privateKey = await importJWK(privateJwk, 'ES256');
  const { d: _d, ...publicJwk } = privateJwk;
  writePrivateFile(
    paths.jwks,
    `${JSON.stringify({ keys: [{ ...publicJwk, kid: 'dev', use: 'sig', alg: 'ES256' }] }, null, 2)}\n`,
  );
  const issuer = devIssuerConfig(config, paths.jwks);
  writePrivateFile(
    paths.issuerConfig,
    `# Written by registry-auth-proxy --dev: the dev issuer, for \`registry-auth-proxy verify --dev\`.\n${toYaml({ issuers: [{ name: issuer.name, issuer: issuer.issuer, audiences: issuer.audiences, jwksFile: issuer.jwksFile }] })}`,
  );
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ name: 'registry-auth-proxy dev identity' })
    .setProtectedHeader({ alg: 'ES256', kid: 'dev', typ: 'JWT' })
    .setIssuer(issuer.issuer)
    .setSubject(subject)
    .setAudience(config.service)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + DEV_TOKEN_TTL)
    .sign(privateKey);
  writePrivateFile(paths.token, `${token}\n`);
  return { issuer, token, expiresAt: now + DEV_TOKEN_TTL };
}

async function loadOrCreateIssuerKey(file: string): Promise<JWK> {
  if (existsSync(file)) {
    const jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
    if (jwk.kty === 'EC' && jwk.crv === 'P-256' && jwk.d) return jwk;
  }
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  writePrivateFile(file, JSON.stringify(jwk));
  return jwk;
}

/**
 * The proxy's own signing key in dev, kept in the state directory: with an ephemeral key every
 * restart would invalidate the refresh token `docker login` stored, and warn about it.
 */
export function ensureDevSigningKey(file: string): string {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writePrivateFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  }
  return file;
}
