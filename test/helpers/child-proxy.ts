import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { stringify } from 'yaml';
import { freePort } from '../fixtures/registry.js';
import { startProxyProcess, type ProxyProcess } from './proxy-process.js';

/**
 * The built proxy as a child process in front of `upstream`, trusting a static test issuer and
 * allowing everything to it: for tests about the process itself (signals, sockets, memory).
 */
export interface ChildProxy extends ProxyProcess {
  /** A registry token of ours for these scopes (via /token, like a client). */
  registryToken(scopes: string[]): Promise<string>;
}

export async function startChildProxy(upstream: string, extra: Record<string, unknown> = {}): Promise<ChildProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-child-'));
  const kp = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: 'c' }] }));
  writeFileSync(join(dir, 'policy.yaml'), 'rules: [{name: all, actions: [pull, push], when: \'identity.issuerName == "ci"\'}]\n');
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
      issuers: [{ name: 'ci', issuer: 'https://ci.test', jwksFile: join(dir, 'jwks.json') }],
      ...extra,
    }),
  );
  const proc = await startProxyProcess(join(dir, 'config.yaml'), `http://127.0.0.1:${port}`, { built: true });
  return Object.assign(proc, {
    async registryToken(scopes: string[]) {
      const now = Math.floor(Date.now() / 1000);
      const id = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'c' }).setIssuer('https://ci.test').setAudience('registry.test').setSubject('child').setExpirationTime(now + 600).sign(kp.privateKey);
      const q = new URLSearchParams({ service: 'registry.test' });
      for (const s of scopes) q.append('scope', s);
      const r = await fetch(`${proc.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`x:${id}`).toString('base64')}` } });
      if (!r.ok) throw new Error(`token: HTTP ${r.status}`);
      return ((await r.json()) as { token: string }).token;
    },
  });
}
