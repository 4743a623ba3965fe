import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCertificateForKey } from '../../src/pki/certificates.js';
import { generatePrivateKeyPem } from '../../src/token/signing-keys.js';
import { startRegistry, freePort, type Registry } from '../fixtures/registry.js';
import { startChildProxy, type ChildProxy } from '../helpers/child-proxy.js';

/**
 * Issue 18 item 3: the upstream token service's answer was read whole (`body.text()`): a 120 MB
 * answer raised the proxy's RSS by ~700 MB and could take it down for every upstream. The proxy
 * (the built one, a child process, so its RSS is its own) fronts two real Distribution registries:
 * `bad/` in token mode whose token server (the test's, speaking Docker's token wire format) answers
 * every token request with an endless `{"token":"aaaa…` body, and `good/` without auth.
 */
const HOSTILE_BYTES = 128 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'a');

let dir: string;
let badRegistry: Registry;
let goodRegistry: Registry;
let tokenServer: Server;
let proxy: ChildProxy;
/** Per token request: body bytes the token server wrote before the proxy hung up (or all of them). */
const answered: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-outbound-'));
  const keyPem = generatePrivateKeyPem('ES256');
  writeFileSync(join(dir, 'bundle.crt'), await selfSignedCertificateForKey(keyPem, 'hostile token server'));
  const tokenPort = await freePort();
  tokenServer = createServer((req, res) => {
    // A 200 as Docker's token spec has it (application/json, chunked), whose token never ends.
    const i = answered.push(0) - 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"token":"');
    const pump = () => {
      while (answered[i]! < HOSTILE_BYTES && !res.destroyed) {
        answered[i]! += CHUNK.length;
        if (!res.write(CHUNK)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end('","expires_in":300}');
    };
    req.resume();
    pump();
  });
  await new Promise<void>((r) => tokenServer.listen(tokenPort, '127.0.0.1', r));
  const realm = `http://127.0.0.1:${tokenPort}/token`;
  badRegistry = await startRegistry({
    tokenAuth: { realm, service: 'bad.test', issuer: 'hostile', rootCertBundle: join(dir, 'bundle.crt') },
  });
  goodRegistry = await startRegistry();
  writeFileSync(join(dir, 'password'), 's3cret-upstream-password\n');
  proxy = await startChildProxy(goodRegistry.url, {
    upstream: undefined,
    upstreams: [
      {
        name: 'bad',
        prefix: 'bad/',
        url: badRegistry.url,
        auth: {
          type: 'registry-token',
          username: 'robot',
          passwordFile: join(dir, 'password'),
          realmHosts: [`127.0.0.1:${tokenPort}`],
        },
      },
      { name: 'good', prefix: 'good/', url: goodRegistry.url },
    ],
  });
});

afterAll(async () => {
  await proxy?.stop();
  await badRegistry?.stop();
  await goodRegistry?.stop();
  await new Promise<void>((r) => (tokenServer ? tokenServer.close(() => r()) : r()));
});

describe('an upstream token service answering without end', () => {
  it('costs one refused read: a 502 naming the cause for that upstream, bounded RSS, the other upstream unharmed', async () => {
    const token = await proxy.registryToken(['repository:bad/app:pull', 'repository:good/app:pull']);
    const auth = { authorization: `Bearer ${token}` };
    const before = proxy.peakRss();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${proxy.url}/v2/bad/app/tags/list`, { headers: auth });
      const text = await res.text();
      expect(res.status).toBe(502);
      const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
      // The status line is what Docker, containerd and skopeo print for a 5xx.
      expect(res.statusText).toBe('Bad Gateway (upstream sent an oversized answer)');
      expect(body.errors[0]!.code).toBe('UNAVAILABLE');
      expect(body.errors[0]!.message).toMatch(
        /^upstream registry sent an oversized answer to the proxy's credential request/,
      );
    }
    expect(answered).toHaveLength(3);
    // The proxy hung up after the cap (64 KiB) plus what sat in socket buffers, never near the 128 MiB.
    for (const n of answered) expect(n).toBeLessThan(16 * 1024 * 1024);
    expect(proxy.peakRss() - before).toBeLessThan(64 * 1024 * 1024);

    // The other upstream is served as before: the registry's own 404 for an unknown repository.
    const good = await fetch(`${proxy.url}/v2/good/app/tags/list`, { headers: auth });
    expect(good.status).toBe(404);
    expect(((await good.json()) as { errors: { message: string }[] }).errors[0]!.message).toBe(
      'repository name not known to registry',
    );
    expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);

    // The log says why (host and cap), and holds neither the proxy's password nor the token.
    const log = proxy.output();
    expect(log).toContain('could not obtain an upstream registry token');
    expect(log).toMatch(/127\.0\.0\.1:\d+ answered HTTP 200 with more than 65536 bytes: refused/);
    expect(log).not.toContain('s3cret-upstream-password');
    expect(log).not.toContain('aaaaaaaa');
  });
});
