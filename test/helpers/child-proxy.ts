import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ciIssuer, TEST_ISSUER } from '../support/issuer.js';
import { freePort } from '../support/net.js';
import { fetchRegistryToken } from '../support/token.js';
import { startProxyProcess, type ProxyProcess, type ProxyProcessOptions } from './proxy-process.js';

/**
 * The built proxy as a child process in front of `upstream`, trusting a static test issuer and
 * allowing everything to it: for tests about the process itself (signals, sockets, memory).
 */
export interface ChildProxy extends ProxyProcess {
  /** A registry token of ours for these scopes (via /token, like a client). */
  registryToken(scopes: string[]): Promise<string>;
}

export async function startChildProxy(
  upstream: string,
  extra: Record<string, unknown> = {},
  opts: Pick<ProxyProcessOptions, 'openFiles'> = {},
): Promise<ChildProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-child-'));
  const issuer = await ciIssuer();
  issuer.writeJwks(join(dir, 'jwks.json'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'rules: [{name: all, actions: [pull, push], when: \'identity.issuerName == "ci"\'}]\n',
  );
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yaml'),
    stringify({
      listen: `127.0.0.1:${port}`,
      publicURL: `http://127.0.0.1:${port}`,
      service: 'registry.test',
      upstream: { url: upstream },
      policies: join(dir, 'policy.yaml'),
      logLevel: 'warn',
      issuers: [{ name: 'ci', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
      ...extra,
    }),
  );
  const proc = await startProxyProcess(join(dir, 'config.yaml'), `http://127.0.0.1:${port}`, { built: true, ...opts });
  return Object.assign(proc, {
    registryToken: async (scopes: string[]) =>
      fetchRegistryToken(proc.url, await issuer.mint({ sub: 'child' }), scopes),
  });
}
