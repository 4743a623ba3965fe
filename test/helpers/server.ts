import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { CryptoKey } from 'jose';
import { stringify } from 'yaml';
import { buildConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { createLogger } from '../../src/log.js';
import { clusterIssuerFor, withClusterIssuer, type PodOptions } from '../../src/server/in-cluster.js';
import { startRuntime, type Runtime, type RuntimeOptions } from '../../src/server/runtime.js';
import { ciIssuer, TEST_ISSUER } from '../support/issuer.js';
import { freePort } from '../support/net.js';
import { fetchRegistryToken, requestToken, type TokenAnswer, type TokenRequestOptions } from '../support/token.js';

/**
 * Starts a full proxy in-process on 127.0.0.1:<random> for integration tests.
 *
 * Options: `upstream` (URL), `policy` (YAML text of a policy file), `config` (extra raw config
 * keys merged in, e.g. `{anonymous: true}` or `issuers: [...]`), `withTestIssuer` (default true:
 * an issuer named `ci` with a static key; mint identity tokens with `mintIdentity`).
 * Returns the runtime, the URL, captured log lines, the ways to get a token, and `stop()`.
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
  /** A registry token for `scopes`, got from /token with a `ci` identity of these claims; throws unless issued. */
  registryToken(scopes: string[], claims?: Record<string, unknown>): Promise<string>;
  /** The /token answer for this identity token and scopes, whatever it is (for tests of refusals). */
  requestToken(identity: string, scopes: string[], opts?: TokenRequestOptions): Promise<TokenAnswer>;
  stop(): Promise<void>;
}

export { TEST_ISSUER };

export interface StartProxyOptions {
  upstream?: string;
  policy?: string;
  config?: Record<string, unknown>;
  withTestIssuer?: boolean;
  signingKeyFile?: string;
  /** Runtime options, and where in-cluster mode looks for a pod (default: not in one). */
  runtime?: RuntimeOptions & PodOptions;
}

/** The built-in test issuer's private key (the attack suite signs hand-built payloads with it). */
export async function testIssuerPrivateKey(): Promise<CryptoKey> {
  return (await ciIssuer()).privateKey;
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

/** A log destination that keeps the last 5000 lines in `logs`, for tests that read what was logged. */
function logSink(logs: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      if (logs.length > 5000) logs.splice(0, logs.length - 5000);
      cb();
    },
  });
}

export async function startProxy(opts: StartProxyOptions = {}): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-proxy-'));
  const issuer = await ciIssuer();
  issuer.writeJwks(join(dir, 'ci-jwks.json'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, opts.policy ?? DEFAULT_TEST_POLICY);
  // the port is picked before the config is built, so publicURL (the realm clients see) can name it
  const port = await freePort();
  const raw: Record<string, unknown> = {
    service: 'registry.test',
    policies: policyFile,
    ...(opts.upstream ? { upstream: { url: opts.upstream } } : {}),
    ...(opts.signingKeyFile ? { tokens: { signingKeyFile: opts.signingKeyFile } } : {}),
    ...(opts.config ?? {}),
    listen: `127.0.0.1:${port}`,
  };
  if (!opts.config?.publicURL) raw.publicURL = `${raw.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const issuers = (raw.issuers as unknown[] | undefined) ?? [];
  if (opts.withTestIssuer !== false)
    issuers.push({ name: 'ci', issuer: TEST_ISSUER, jwksFile: join(dir, 'ci-jwks.json') });
  raw.issuers = issuers;
  writeFileSync(join(dir, 'config.yaml'), stringify(raw));
  const config = buildConfig(raw, {}, join(dir, 'config.yaml'));
  const logs: string[] = [];
  const sink = logSink(logs);
  const logger = createLogger('debug', sink);
  const { env = {}, serviceAccountDir, ...runtimeOptions } = opts.runtime ?? {};
  // As the process model does before starting the runtime (server/process.ts).
  const decided = withClusterIssuer(config, await clusterIssuerFor(config, logger, { env, serviceAccountDir }));
  const runtime = await startRuntime(decided, logger, runtimeOptions);
  const url = runtime.url;
  const mintIdentity = (claims: Record<string, unknown> = {}, o: { ttl?: number } = {}) =>
    issuer.mint({ ...claims, aud: config.service }, o);
  return {
    url,
    host: new URL(url).host,
    runtime,
    config,
    dir,
    logs,
    mintIdentity,
    registryToken: async (scopes, claims) =>
      fetchRegistryToken(url, await mintIdentity(claims), scopes, { service: config.service }),
    requestToken: (identity, scopes, o) => requestToken(url, identity, scopes, { service: config.service, ...o }),
    stop: () => runtime.stop(1000),
  };
}
