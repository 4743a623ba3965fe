import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { generatePrivateKeyPem } from '../../../src/token/signing-keys.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startChildProxy, type ChildProxy } from '../../helpers/child-proxy.js';

let keyDir: string;
let registry: Registry;
let a: ChildProxy;
let b: ChildProxy;

const SCOPE = ['repository:team-a/app:pull'];

/** What answered: 'registry' when the proxy accepted the token and forwarded (the empty registry
 *  says NAME_UNKNOWN), otherwise the proxy's status. */
async function status(p: ChildProxy, t: string): Promise<string> {
  const r = await fetch(`${p.url}/v2/team-a/app/tags/list`, { headers: { authorization: `Bearer ${t}` } });
  const body = (await r.json()) as { errors?: { code: string }[] };
  return r.status === 404 && body.errors?.[0]?.code === 'NAME_UNKNOWN' ? 'registry' : `proxy ${r.status}`;
}

/** Two replicas — two OS processes — share one key directory (a mounted Secret): current + next, switched by a symlink. */
beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'rap-keys-'));
  writeFileSync(join(keyDir, 'key-1.pem'), generatePrivateKeyPem('ES256'), { mode: 0o600 });
  writeFileSync(join(keyDir, 'key-2.pem'), generatePrivateKeyPem('ES256'), { mode: 0o600 });
  symlinkSync('key-1.pem', join(keyDir, 'current.pem'));
  registry = await startRegistry();
  const shared = {
    publicURL: 'http://registry.test.local',
    service: 'registry.test',
    tokens: { signingKeyFile: keyDir },
  };
  [a, b] = await Promise.all([startChildProxy(registry.url, shared), startChildProxy(registry.url, shared)]);
}, 60_000);
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await registry?.stop();
});

describe('signing keys shared by replicas', () => {
  it('a token issued by one process works on the other; rotation keeps older tokens valid', async () => {
    const before = await a.registryToken(SCOPE);
    expect(await status(b, before)).toBe('registry');
    expect(await status(a, before)).toBe('registry');
    const jwks = (await (await fetch(`${a.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(2); // the next key is published before it signs
    const oldKid = decodeProtectedHeader(before).kid;

    // rotate: point current.pem at the next key (atomically, as a Secret update does)
    symlinkSync('key-2.pem', join(keyDir, 'current.tmp'));
    renameSync(join(keyDir, 'current.tmp'), join(keyDir, 'current.pem'));
    // both processes notice (fs.watch, or the 10 s re-read at the latest)
    const deadline = Date.now() + 15_000;
    let afterA = before;
    let afterB = before;
    while (
      Date.now() < deadline &&
      (decodeProtectedHeader(afterA).kid === oldKid || decodeProtectedHeader(afterB).kid === oldKid)
    ) {
      await new Promise((r) => setTimeout(r, 200));
      [afterA, afterB] = await Promise.all([a.registryToken(SCOPE), b.registryToken(SCOPE)]);
    }
    expect(decodeProtectedHeader(afterA).kid).not.toBe(oldKid);
    expect(decodeProtectedHeader(afterB).kid).toBe(decodeProtectedHeader(afterA).kid);
    expect(await status(a, afterB)).toBe('registry');
    expect(await status(b, afterA)).toBe('registry');
    // the token issued before the rotation stays valid on both until it expires
    expect(await status(a, before)).toBe('registry');
    expect(await status(b, before)).toBe('registry');
  }, 60_000);
});
