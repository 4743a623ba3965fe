import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { onNewConnection, spawnBuiltProxy } from '../../support/cluster.js';
import { ciIssuer, TEST_ISSUER } from '../../support/issuer.js';
import { freePort } from '../../support/net.js';
import { basicAuth } from '../../support/token.js';

/** The built proxy (`dist/`) with `limits` and `workers` of the test's choosing, trusting the ci issuer from a file. */
export async function limitedProxy(limits: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rap-limits-'));
  (await ciIssuer()).writeJwks(join(dir, 'jwks.json'));
  writeFileSync(join(dir, 'policy.yaml'), "rules: [{name: all, actions: [pull], when: 'true'}]\n");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = {
    listen: `127.0.0.1:${port}`,
    service: 'registry.test',
    upstream: { url: 'http://127.0.0.1:9' },
    issuers: [{ name: 'ci', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }],
    policies: join(dir, 'policy.yaml'),
    logLevel: 'info',
    limits,
    ...extra,
  };
  writeFileSync(join(dir, 'rap.yaml'), stringify(config));
  const proxy = await spawnBuiltProxy(['--config', join(dir, 'rap.yaml')], url);
  return { ...proxy, url };
}

/** An identity token of the ci issuer for `sub` (and extra claims). */
export async function identity(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return (await ciIssuer()).mint({ sub, ...claims });
}

/** GET /token on a fresh connection (so each lands on the next worker). */
export function tokenRequest(url: string, idToken: string, scope = 'repository:team/app:pull') {
  return onNewConnection(`${url}/token?service=registry.test&scope=${scope}`, {
    headers: { authorization: basicAuth(idToken) },
  });
}
