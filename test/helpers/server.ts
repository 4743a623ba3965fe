import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { stringify } from 'yaml';
import { buildConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { createLogger } from '../../src/log.js';
import { startRuntime, type Runtime, type RuntimeOptions } from '../../src/server/runtime.js';

/**
 * Starts a full proxy in-process on 127.0.0.1:<random> for integration tests.
 *
 * Options: `upstream` (URL), `policy` (YAML text of a policy file), `config` (extra raw config
 * keys merged in, e.g. `{anonymous: true}` or `issuers: [...]`), `withTestIssuer` (default true:
 * an issuer named `ci` with a static key; mint identity tokens with `mintIdentity`).
 * Returns the runtime, the URL, captured log lines and `stop()`.
 */
export interface TestProxy {
  url: string;
  host: string;
  runtime: Runtime;
  config: Config;
  dir: string;
  logs: string[];
  /** An identity token of the built-in test issuer (`iss` https://ci.test, `aud` the service). */
  mintIdentity(claims?: Record<string, unknown>, opts?: { ttl?: number }): Promise<string>;
  stop(): Promise<void>;
}

export const TEST_ISSUER = 'https://ci.test';

export interface StartProxyOptions {
  upstream?: string;
  policy?: string;
  config?: Record<string, unknown>;
  withTestIssuer?: boolean;
  signingKeyFile?: string;
  /** In-cluster auto-configuration inputs (env, service-account directory). */
  runtime?: RuntimeOptions;
}

let testKey: { privateKey: CryptoKey; jwks: string } | undefined;
async function testIssuerKey() {
  if (!testKey) {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    testKey = { privateKey, jwks: JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'ci-1', use: 'sig' }] }) };
  }
  return testKey;
}

/** The built-in test issuer's private key (the attack suite signs hand-built payloads with it). */
export async function testIssuerPrivateKey(): Promise<CryptoKey> {
  return (await testIssuerKey()).privateKey;
}

export const DEFAULT_TEST_POLICY = `
rules:
  - name: ci-owns-its-prefix
    actions: [pull, push]
    when: identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/")
  - name: ci-deletes-scratch
    actions: [delete, "*"]
    when: identity.issuerName == "ci" && request.repository.startsWith(claims.team + "/scratch")
  - name: ci-pulls-shared
    actions: [pull]
    when: identity.issuerName == "ci" && request.repository.startsWith("shared/")
`;

export async function startProxy(opts: StartProxyOptions = {}): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-proxy-'));
  const key = await testIssuerKey();
  writeFileSync(join(dir, 'ci-jwks.json'), key.jwks);
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy ?? DEFAULT_TEST_POLICY);
  const raw: Record<string, unknown> = {
    listen: '127.0.0.1:0',
    service: 'registry.test',
    policies: policyFile,
    ...(opts.upstream ? { upstream: { url: opts.upstream } } : {}),
    ...(opts.signingKeyFile ? { tokens: { signingKeyFile: opts.signingKeyFile } } : {}),
    ...(opts.config ?? {}),
  };
  const issuers = (raw.issuers as unknown[] | undefined) ?? [];
  if (opts.withTestIssuer !== false) issuers.push({ name: 'ci', issuer: TEST_ISSUER, jwksFile: join(dir, 'ci-jwks.json') });
  raw.issuers = issuers;
  writeFileSync(join(dir, 'config.yaml'), stringify(raw));
  // publicURL needs the real port: listen first on :0, then fix publicURL before serving requests.
  const config = buildConfig(raw, {}, join(dir, 'config.yaml'));
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      if (logs.length > 5000) logs.splice(0, logs.length - 5000);
      cb();
    },
  });
  const port = await (await import('../fixtures/registry.js')).freePort();
  config.listen = { host: '127.0.0.1', port };
  if (!opts.config?.publicURL) config.publicURL = `${config.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  if (!opts.config?.service) config.service = 'registry.test';
  const runtime = await startRuntime(config, createLogger('debug', sink), opts.runtime ?? { env: {} });
  return {
    url: runtime.url,
    host: new URL(runtime.url).host,
    runtime,
    config,
    dir,
    logs,
    async mintIdentity(claims = {}, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ team: 'team-a', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
        .setIssuer(TEST_ISSUER)
        .setAudience(config.service)
        .setSubject((claims.sub as string | undefined) ?? 'job-42')
        .setIssuedAt(now)
        .setExpirationTime(now + (o.ttl ?? 600))
        .sign(key.privateKey);
    },
    stop: () => runtime.stop(1000),
  };
}
