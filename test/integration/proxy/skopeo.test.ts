import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from '../../fixtures/registry.js';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { outcome, requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';

let stack: RegistryAndProxy;
let registry: Registry;
let proxy: TestProxy;
let image: OciImage;
let skopeo: string;
let work: string;

async function sk(args: string[]): Promise<{ ok: boolean; out: string }> {
  return outcome(skopeo, args);
}

beforeAll(async () => {
  skopeo = requireTool('skopeo');
  stack = await startRegistryAndProxy();
  ({ registry, proxy } = stack);
  work = mkdtempSync(join(tmpdir(), 'rap-skopeo-'));
  image = buildOciImage(join(work, 'image'), { layers: 3, layerBytes: 256 * 1024 });
});
afterAll(() => stack?.stop());

describe('skopeo through the proxy against a real Distribution registry', () => {
  it('pushes and pulls a multi-layer image with an identity token as the password', async () => {
    const id = await proxy.mintIdentity();
    const digestFile = join(work, 'pushed.digest');
    const push = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `anything:${id}`,
      '--digestfile',
      digestFile,
      image.ref,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    expect(push.ok, push.out).toBe(true);
    expect(await registry.repositories()).toContain('team-a/app');
    const pushed = readFileSync(digestFile, 'utf8').trim();
    const pull = await sk([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `anything:${id}`,
      `docker://${proxy.host}/team-a/app:v1`,
      `oci:${join(work, 'pulled')}:v1`,
    ]);
    expect(pull.ok, pull.out).toBe(true);
    const inspect = await sk([
      'inspect',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    const info = JSON.parse(inspect.out.slice(inspect.out.indexOf('{')));
    expect(info.Digest).toBe(pushed);
    expect(info.Layers).toHaveLength(3);
  });

  it('refuses a push to a repository the policy forbids, and the upstream holds nothing', async () => {
    const id = await proxy.mintIdentity();
    const push = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `anything:${id}`,
      image.ref,
      `docker://${proxy.host}/team-b/app:v1`,
    ]);
    expect(push.ok).toBe(false);
    // Nothing granted, so skopeo's first call (HEAD on a blob) is refused: containers/image 5.23
    // prints only the status of a refused HEAD (no body; the reason is in the status line, which it
    // ignores). A push where pull is allowed prints the full reason (clients/denials.test.ts).
    expect(push.out).toContain('failed to read from destination repository team-b/app: 403 (Forbidden)');
    expect(await registry.repositories()).not.toContain('team-b/app');
    expect(registry.logs()).not.toContain('team-b/app');
  });

  it('refuses an invalid identity token', async () => {
    const push = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'x:not-a-token',
      image.ref,
      `docker://${proxy.host}/team-a/other:v1`,
    ]);
    expect(push.ok).toBe(false);
    expect(await registry.repositories()).not.toContain('team-a/other');
  });

  it('lists tags and deletes where allowed, refuses deletes elsewhere', async () => {
    const id = await proxy.mintIdentity();
    expect(
      (
        await sk([
          'copy',
          '--dest-tls-verify=false',
          '--dest-creds',
          `x:${id}`,
          image.ref,
          `docker://${proxy.host}/team-a/scratch:tmp`,
        ])
      ).ok,
    ).toBe(true);
    const tags = await sk([
      'list-tags',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/app`,
    ]);
    expect(JSON.parse(tags.out.slice(tags.out.indexOf('{'))).Tags).toEqual(['v1']);
    const refused = await sk([
      'delete',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/app:v1`,
    ]);
    expect(refused.ok).toBe(false);
    expect(
      (await sk(['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxy.host}/team-a/app:v1`])).ok,
    ).toBe(true);
    const allowed = await sk([
      'delete',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/team-a/scratch:tmp`,
    ]);
    expect(allowed.ok, allowed.out).toBe(true);
    expect(
      (await sk(['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxy.host}/team-a/scratch:tmp`]))
        .ok,
    ).toBe(false);
  });

  it('streams a chunked upload (POST, PATCH, PATCH, PUT) with one token', async () => {
    const t = await proxy.registryToken(['repository:team-a/chunked:pull,push']);
    const auth = { authorization: `Bearer ${t}` };
    const start = await fetch(`${proxy.url}/v2/team-a/chunked/blobs/uploads/`, { method: 'POST', headers: auth });
    expect(start.status).toBe(202);
    let loc = start.headers.get('location')!;
    expect(loc.startsWith(proxy.url)).toBe(true);
    const parts = [Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2)];
    let offset = 0;
    for (const p of parts) {
      const r = await fetch(loc, {
        method: 'PATCH',
        headers: {
          ...auth,
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + p.length - 1}`,
        },
        body: p,
      });
      expect(r.status).toBe(202);
      offset += p.length;
      loc = r.headers.get('location')!;
      expect(loc.startsWith(proxy.url)).toBe(true);
    }
    const { createHash } = await import('node:crypto');
    const digest = `sha256:${createHash('sha256').update(Buffer.concat(parts)).digest('hex')}`;
    const put = await fetch(`${loc}&digest=${digest}`, { method: 'PUT', headers: auth });
    expect(put.status).toBe(201);
    const head = await fetch(`${proxy.url}/v2/team-a/chunked/blobs/${digest}`, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('150000');
  });

  it('mounts across repositories only when `from` may be pulled', async () => {
    // a layer as the registry stores it (skopeo compresses layers on push)
    const reader = await proxy.registryToken(['repository:team-a/app:pull']);
    const manifest = (await (
      await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
        headers: { authorization: `Bearer ${reader}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]!.digest;
    // allowed: team-a/app → team-a/mounted
    const ok = await proxy.registryToken(['repository:team-a/mounted:pull,push', 'repository:team-a/app:pull']);
    const r1 = await fetch(`${proxy.url}/v2/team-a/mounted/blobs/uploads/?mount=${layer}&from=team-a/app`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ok}` },
    });
    expect(r1.status).toBe(201);
    // refused: from a repository of another team → the mount is not forwarded; a plain upload starts
    const t2 = await proxy.registryToken(['repository:team-c/stolen:pull,push', 'repository:team-a/app:pull'], {
      team: 'team-c',
    });
    const r2 = await fetch(`${proxy.url}/v2/team-c/stolen/blobs/uploads/?mount=${layer}&from=team-a/app`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t2}` },
    });
    expect(r2.status).toBe(202);
    const head = await fetch(`${proxy.url}/v2/team-c/stolen/blobs/${layer}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${t2}` },
    });
    expect(head.status).toBe(404);
  });

  it('challenges exactly as Distribution does', async () => {
    const r = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`);
    expect(r.status).toBe(401);
    expect(r.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(r.headers.get('www-authenticate')).toBe(
      `Bearer realm="${proxy.url}/token",service="registry.test",scope="repository:team-a/app:pull"`,
    );
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
    const ping = await fetch(`${proxy.url}/v2/`);
    expect(ping.headers.get('www-authenticate')).toBe(`Bearer realm="${proxy.url}/token",service="registry.test"`);
    const bad = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: 'Bearer abc.def.ghi' },
    });
    expect(bad.headers.get('www-authenticate')).toContain(',error="invalid_token"');
    const weak = await proxy.registryToken(['repository:team-a/app:pull']);
    const put = await fetch(`${proxy.url}/v2/team-a/app/manifests/v2`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${weak}`, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: '{}',
    });
    expect(put.status).toBe(401);
    expect(put.headers.get('www-authenticate')).toBe(
      `Bearer realm="${proxy.url}/token",service="registry.test",scope="repository:team-a/app:pull,push",error="insufficient_scope"`,
    );
    expect(((await put.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('DENIED');
    expect(registry.logs()).not.toContain('/v2/team-a/app/manifests/v2');
  });

  it('passes the catalog only to tokens granted registry:catalog:*', async () => {
    // asked for and refused by the policy: 403 with the reason (a new token would not help)
    const noCat = await proxy.registryToken(['registry:catalog:*']);
    const r = await fetch(`${proxy.url}/v2/_catalog`, { headers: { authorization: `Bearer ${noCat}` } });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { errors: { code: string; message: string }[] }).errors[0]).toMatchObject({
      code: 'DENIED',
      message: expect.stringContaining('no rule grants *'),
    });
    // never asked for: Distribution's challenge, so the client fetches a token for it
    const other = await fetch(`${proxy.url}/v2/_catalog`, {
      headers: { authorization: `Bearer ${await proxy.registryToken(['repository:team-a/app:pull'])}` },
    });
    expect(other.status).toBe(401);
    expect(other.headers.get('www-authenticate')).toContain('scope="registry:catalog:*",error="insufficient_scope"');
  });
});
