import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, base64url, type CryptoKey } from 'jose';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { startProxy, TEST_ISSUER, type TestProxy } from '../helpers/server.js';
import { basicAuth, type TokenBody } from '../support/token.js';

/**
 * The attack-suite target: a proxy in front of a recording upstream, trusting two issuers — `ci`
 * (ES256, static JWKS, the helpers' test issuer) and `rsa` (RS256, a PEM public key) — so that
 * cross-issuer and HMAC-with-public-key attacks have something real to aim at.
 */
export interface Target {
  proxy: TestProxy;
  upstream: RecordingUpstream;
  port: number;
  rsaIssuer: string;
  rsaPublicPem: string;
  rsaPrivate: KeyObject;
  /** A Basic header carrying `token` as the password. */
  basic(token: string, user?: string): string;
  /** GET /token with the identity token; returns status and parsed body. */
  tokenFor(
    identity: string,
    scopes: string[],
    user?: string,
  ): Promise<{ status: number; body: TokenBody; headers: Headers }>;
  /** A registry token of ours for the `ci` identity with these scopes. */
  registryToken(scopes: string[], claims?: Record<string, unknown>): Promise<string>;
  /** An RS256 identity token of the `rsa` issuer. */
  mintRsa(claims?: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

export type { TokenBody };

const RSA_ISSUER = 'https://rsa.test';

export async function startTarget(extraConfig: Record<string, unknown> = {}, policy?: string): Promise<Target> {
  const upstream = await startRecordingUpstream();
  const { privateKey: rsaPrivate, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaPublicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const pemDir = mkdtempSync(join(tmpdir(), 'rap-sec-'));
  writeFileSync(join(pemDir, 'rsa.pem'), rsaPublicPem);
  const proxy = await startProxy({
    upstream: upstream.url,
    policy,
    config: {
      issuers: [{ name: 'rsa', issuer: RSA_ISSUER, jwksFile: join(pemDir, 'rsa.pem') }],
      limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 } },
      ...extraConfig,
    },
  });
  const t: Target = {
    proxy,
    upstream,
    port: Number(new URL(proxy.url).port),
    rsaIssuer: RSA_ISSUER,
    rsaPublicPem,
    rsaPrivate,
    basic: basicAuth,
    tokenFor: (identity, scopes, user) => proxy.requestToken(identity, scopes, { user }),
    registryToken: (scopes, claims) => proxy.registryToken(scopes, claims),
    async mintRsa(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ team: 'team-a', ...claims })
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuer(RSA_ISSUER)
        .setAudience('registry.test')
        .setSubject('rsa-workload')
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(rsaPrivate);
    },
    async stop() {
      await proxy.stop();
      await upstream.stop();
    },
  };
  return t;
}

/** Hand-assembles a JWS from a header and a payload object (or raw JSON text) and a signer. */
export function assemble(
  header: unknown,
  payload: unknown,
  sign: (input: string) => Buffer | string = () => 'c2ln',
): string {
  const h = base64url.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const p = base64url.encode(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const sig = sign(`${h}.${p}`);
  return `${h}.${p}.${typeof sig === 'string' ? sig : base64url.encode(sig)}`;
}

export function hs256(secret: string | Buffer): (input: string) => Buffer {
  return (input) => createHmac('sha256', secret).update(input).digest();
}

/** Valid-looking claims for the `ci` issuer. */
export function ciClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: TEST_ISSUER, aud: 'registry.test', sub: 'job-42', team: 'team-a', iat: now, exp: now + 600, ...extra };
}

/** An attacker's own key pair, with its public JWK. */
export async function attackerKey(): Promise<{ privateKey: CryptoKey; jwk: Record<string, unknown> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)) } };
}

export { parseRaw, rawRequest } from '../helpers/raw-http.js';
