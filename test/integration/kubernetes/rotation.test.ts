import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { generatePrivateKeyPem } from '../../../src/token/keys.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

let keyDir: string;
let registry: Registry;
let a: TestProxy;
let b: TestProxy;

async function token(p: TestProxy): Promise<string> {
  const id = await p.mintIdentity();
  const r = await fetch(`${p.url}/token?service=registry.test&scope=repository:team-a/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`x:${id}`).toString('base64')}` } });
  return ((await r.json()) as { token: string }).token;
}

async function status(p: TestProxy, t: string): Promise<number> {
  const r = await fetch(`${p.url}/v2/team-a/app/tags/list`, { headers: { authorization: `Bearer ${t}` } });
  await r.arrayBuffer();
  return r.status;
}

/** Two replicas share one key directory (a mounted Secret): current + next, switched by a symlink. */
beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'rap-keys-'));
  writeFileSync(join(keyDir, 'key-1.pem'), generatePrivateKeyPem('ES256'), { mode: 0o600 });
  writeFileSync(join(keyDir, 'key-2.pem'), generatePrivateKeyPem('ES256'), { mode: 0o600 });
  symlinkSync('key-1.pem', join(keyDir, 'current.pem'));
  registry = await startRegistry();
  const shared = { publicURL: 'http://registry.test.local', service: 'registry.test' };
  a = await startProxy({ upstream: registry.url, signingKeyFile: keyDir, config: shared });
  b = await startProxy({ upstream: registry.url, signingKeyFile: keyDir, config: shared });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await registry?.stop();
});

describe('signing keys shared by replicas', () => {
  it('a token issued by one replica works on the other; rotation keeps older tokens valid', async () => {
    const before = await token(a);
    expect(await status(b, before)).not.toBe(401);
    expect(await status(a, before)).not.toBe(401);
    const jwks = (await (await fetch(`${a.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(2); // the next key is published before it signs
    const oldKid = decodeProtectedHeader(before).kid;

    // rotate: point current.pem at the next key (atomically, as a Secret update does)
    symlinkSync('key-2.pem', join(keyDir, 'current.tmp'));
    renameSync(join(keyDir, 'current.tmp'), join(keyDir, 'current.pem'));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (a.runtime.keys.current().kid === oldKid || b.runtime.keys.current().kid === oldKid)) await new Promise((r) => setTimeout(r, 100));

    const after = await token(b);
    expect(decodeProtectedHeader(after).kid).not.toBe(oldKid);
    expect(await status(a, after)).not.toBe(401);
    // the token issued before the rotation stays valid on both until it expires
    expect(await status(a, before)).not.toBe(401);
    expect(await status(b, before)).not.toBe(401);
  });
});
