import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { stringify } from 'yaml';
import { blobDigest, pullBlob, pushBlob } from '../../bench/lib/blob.js';
import { startRegistry, freePort, type Registry } from '../fixtures/registry.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';

/**
 * Streaming is the product: a 1 GiB blob is pushed and pulled through the proxy (a separate
 * process) while its peak RSS is read from /proc. Memory is asserted, not time.
 */
const SIZE = Number(process.env.RAP_STREAM_TEST_BYTES ?? 1024 ** 3);
const RSS_LIMIT = 150 * 1024 * 1024;

let registry: Registry;
let proxy: ProxyProcess;
let key: CryptoKey;

beforeAll(async () => {
  registry = await startRegistry();
  const dir = mkdtempSync(join(tmpdir(), 'rap-stream-'));
  const kp = await generateKeyPair('ES256', { extractable: true });
  key = kp.privateKey;
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: 's' }] }));
  writeFileSync(join(dir, 'policy.yaml'), 'rules: [{name: all, actions: [pull, push], when: \'identity.issuerName == "ci"\'}]\n');
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yaml'),
    stringify({
      listen: `127.0.0.1:${port}`,
      publicURL: `http://127.0.0.1:${port}`,
      service: 'registry.test',
      upstream: { url: registry.url },
      policies: join(dir, 'policy.yaml'),
      logLevel: 'warn',
      issuers: [{ name: 'ci', issuer: 'https://ci.test', jwksFile: join(dir, 'jwks.json') }],
    }),
  );
  // The built proxy (npm test builds first): the same code a user runs, without the TypeScript loader.
  proxy = await startProxyProcess(join(dir, 'config.yaml'), `http://127.0.0.1:${port}`, { built: true });
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('streaming', () => {
  it(`pushes and pulls a ${Math.round(SIZE / 1024 ** 2)} MiB blob with the proxy's peak RSS under 150 MB`, async () => {
    const now = Math.floor(Date.now() / 1000);
    const id = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 's' }).setIssuer('https://ci.test').setAudience('registry.test').setSubject('bulk').setExpirationTime(now + 600).sign(key);
    const q = new URLSearchParams({ service: 'registry.test', scope: 'repository:big/blob:pull,push' });
    const tokenRes = await fetch(`${proxy.url}/token?${q}`, { headers: { authorization: `Basic ${Buffer.from(`x:${id}`).toString('base64')}` } });
    const token = ((await tokenRes.json()) as { token: string }).token;
    const headers = { authorization: `Bearer ${token}` };
    const digest = await blobDigest(SIZE, 7);
    const baseline = proxy.rss();
    await pushBlob(proxy.url, 'big/blob', SIZE, digest, headers, 7);
    await pullBlob(proxy.url, 'big/blob', digest, SIZE, headers, true);
    const peak = proxy.peakRss();
    console.log(`streaming ${SIZE} bytes: proxy RSS before ${(baseline / 1e6).toFixed(1)} MB, peak ${(peak / 1e6).toFixed(1)} MB`);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(RSS_LIMIT);
  }, 240_000);
});
