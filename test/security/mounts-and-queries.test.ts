import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pushSmallBlob } from '../support/seed.js';
import { buildConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { buildOciImage } from '../fixtures/images.js';
import { freePort, type Registry } from '../fixtures/registry.js';
import { requireTool } from '../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../helpers/registry-and-proxy.js';
import { startProxy, type TestProxy } from '../helpers/server.js';
import { parseRaw, rawRequest, startTarget, type Target } from './harness.js';

/**
 * Issue 9, item 2: a cross-repository mount smuggled past authorization through the request body
 * (Distribution reads `mount`/`from` with Go's FormValue, which parses form bodies and prefers
 * them to the query) or through a `;`-separated query (Go < 1.17, registry:2.7, splits on `;`).
 * Item 11: an `upstream.url` with a path prefix. Each case checks the status, the OCI body and what
 * the upstream saw.
 */
const D = `sha256:${'a'.repeat(64)}`;
let t: Target;
let push: string;
let pushAndShared: string;

interface OciBody {
  errors: { code: string; message: string }[];
}

beforeAll(async () => {
  t = await startTarget();
  push = await t.registryToken(['repository:team-a/app:pull,push']);
  pushAndShared = await t.registryToken(['repository:team-a/app:pull,push', 'repository:shared/base:pull']);
});
afterAll(() => t?.stop());
beforeEach(() => {
  t.upstream.requests.length = 0;
});

async function call(path: string, token: string, init: RequestInit = {}) {
  const r = await fetch(`${t.proxy.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) },
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as OciBody };
}

function multipart(fields: Record<string, string>): { body: string; type: string } {
  const boundary = 'rapboundary42';
  const body = Object.entries(fields)
    .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
    .join('');
  return { body: `${body}--${boundary}--\r\n`, type: `multipart/form-data; boundary=${boundary}` };
}

describe('mount through the request body', () => {
  const evil = `mount=${encodeURIComponent(D)}&from=team-b%2Fsecret`;

  it('refuses form bodies on upload-start, with or without a mount in the query', async () => {
    const mp = multipart({ mount: D, from: 'team-b/secret' });
    const cases: [string, string, string][] = [
      ['/v2/team-a/app/blobs/uploads/', 'application/x-www-form-urlencoded', evil],
      ['/v2/team-a/app/blobs/uploads/', 'Application/X-WWW-Form-Urlencoded; charset=UTF-8', evil],
      ['/v2/team-a/app/blobs/uploads/', mp.type, mp.body],
      // an authorized self-mount in the query, the real source in the body (the body wins in Go)
      [`/v2/team-a/app/blobs/uploads/?mount=${D}&from=team-a%2Fapp`, 'application/x-www-form-urlencoded', evil],
      [`/v2/team-a/app/blobs/uploads/?mount=${D}&from=team-a%2Fapp`, mp.type, mp.body],
    ];
    for (const [path, type, body] of cases) {
      const r = await call(path, push, { method: 'POST', headers: { 'content-type': type }, body });
      expect(r.status, `${path} ${type}`).toBe(400);
      expect(r.body.errors[0]!.code, `${path} ${type}`).toBe('UNSUPPORTED'); // the form is refused before the mount is looked at
    }
    const r = await call('/v2/team-a/app/blobs/uploads/', push, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: evil,
    });
    expect(r.body.errors[0]).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringMatching(/form/) });
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('refuses a form Content-Type hidden behind another one', async () => {
    const out = parseRaw(
      await rawRequest(
        t.port,
        `POST /v2/team-a/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${push}\r\nContent-Type: application/octet-stream\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${evil.length}\r\nConnection: close\r\n\r\n${evil}`,
      ),
    );
    expect(out.status).toBe(400);
    expect((out.body as OciBody).errors[0]!.code).toBe('UNSUPPORTED');
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('refuses any body on a mount POST, allowed source or not', async () => {
    for (const from of ['team-a/app', 'shared/base', 'team-b/secret']) {
      const r = await call(`/v2/team-a/app/blobs/uploads/?mount=${D}&from=${encodeURIComponent(from)}`, pushAndShared, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: 'x',
      });
      expect(r.status, from).toBe(400);
      expect(r.body.errors[0]).toMatchObject({
        code: 'BLOB_UPLOAD_INVALID',
        message: expect.stringMatching(/mount takes no request body/),
      });
    }
    const chunked = parseRaw(
      await rawRequest(
        t.port,
        `POST /v2/team-a/app/blobs/uploads/?mount=${D}&from=shared%2Fbase HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pushAndShared}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${evil.length.toString(16)}\r\n${evil}\r\n0\r\n\r\n`,
      ),
    );
    expect(chunked.status).toBe(400);
    expect((chunked.body as OciBody).errors[0]!.code).toBe('BLOB_UPLOAD_INVALID');
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('refuses form content on every other body route too', async () => {
    const id = '6e1a4bd7-1cbb-4e5b-8f5f-1b2a3c4d5e6f';
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    for (const [method, path] of [
      ['PATCH', `/v2/team-a/app/blobs/uploads/${id}?_state=s`],
      ['PUT', `/v2/team-a/app/blobs/uploads/${id}?_state=s&digest=${D}`],
      ['PUT', '/v2/team-a/app/manifests/v1'],
    ] as const) {
      const r = await call(path, push, { method, headers: form, body: `digest=${D}&_state=x` });
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(r.body.errors[0]!.code).toBe('UNSUPPORTED');
    }
    expect(t.upstream.requests).toHaveLength(0);
  });

  it('still forwards bodiless mounts and plain uploads with ordinary bodies', async () => {
    expect(
      (await call(`/v2/team-a/app/blobs/uploads/?mount=${D}&from=shared%2Fbase`, pushAndShared, { method: 'POST' }))
        .status,
    ).toBe(200);
    expect(
      (
        await call(`/v2/team-a/app/blobs/uploads/?digest=${D}`, push, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream' },
          body: 'abc',
        })
      ).status,
    ).toBe(200);
    expect(t.upstream.requests.map((r) => [r.method, r.url, r.bodyBytes])).toEqual([
      ['POST', `/v2/team-a/app/blobs/uploads/?mount=${encodeURIComponent(D)}&from=shared%2Fbase`, 0],
      ['POST', `/v2/team-a/app/blobs/uploads/?digest=${encodeURIComponent(D)}`, 3],
    ]);
  });
});

describe('`;`-separated and other re-serialized queries', () => {
  it('never forwards a `;` that an old registry would read as mount and from', async () => {
    for (const q of [
      `x=1;mount=${D};from=team-b/secret`,
      `;mount=${D};from=team-b/secret`,
      `mount=${D};from=team-b/secret`,
    ]) {
      const r = await call(`/v2/team-a/app/blobs/uploads/?${q}`, push, { method: 'POST' });
      // the `;` forms carry no mount the proxy can read (URLSearchParams splits on `&` only; at most a
      // lone `mount`, with `;from=…` inside its value): a plain upload start
      expect(r.status, q).toBe(200);
    }
    expect(t.upstream.requests.length).toBeGreaterThan(0);
    for (const seen of t.upstream.requests) {
      expect(seen.url).not.toContain(';');
      // what Go < 1.17 would read: split on both separators
      // (a lone `mount=…;from=…` is no mount at all: a plain upload start, with no query)
      const pairs = (seen.url.split('?')[1] ?? '').split(/[&;]/).map((p) => decodeURIComponent(p.split('=')[0]!));
      expect(pairs).not.toContain('mount');
      expect(pairs).not.toContain('from');
    }
  });

  it('re-serializes the query of every route, and drops mount/from where they are not an authorized mount', async () => {
    const pull = await t.registryToken(['repository:team-a/app:pull,push']);
    const id = '6e1a4bd7-1cbb-4e5b-8f5f-1b2a3c4d5e6f';
    await call('/v2/team-a/app/tags/list?n=1;last=x', pull);
    await call(`/v2/team-a/app/manifests/v1?from=team-b%2Fsecret&mount=${D}`, pull);
    await call(`/v2/team-a/app/blobs/uploads/${id}?_state=abc%3D%3D;from=team-b/secret`, push, {
      method: 'PATCH',
      body: 'x',
    });
    await call(`/v2/team-a/app/blobs/uploads/${id}?_state=abc-_%3D%3D&digest=${D}`, push, { method: 'PUT', body: 'x' });
    expect(t.upstream.requests.map((r) => r.url)).toEqual([
      '/v2/team-a/app/tags/list?n=1%3Blast%3Dx',
      '/v2/team-a/app/manifests/v1',
      `/v2/team-a/app/blobs/uploads/${id}?_state=${encodeURIComponent('abc==;from=team-b/secret')}`,
      `/v2/team-a/app/blobs/uploads/${id}?_state=abc-_%3D%3D&digest=${encodeURIComponent(D)}`,
    ]);
  });
});

describe('against a real Distribution registry', () => {
  let stack: RegistryAndProxy;
  let registry: Registry;
  let proxy: TestProxy;
  beforeAll(async () => {
    stack = await startRegistryAndProxy();
    ({ registry, proxy } = stack);
  });
  afterAll(() => stack?.stop());

  it('a form body does not mount a blob from a repository the token cannot pull', async () => {
    const digest = await pushSmallBlob(registry.url, 'team-b/secret', Buffer.from(`secret layer ${Date.now()}`));
    const form = `mount=${encodeURIComponent(digest)}&from=team-b%2Fsecret`;
    // The registry itself honours a mount named only in a form body (what the proxy must never forward):
    const direct = await fetch(`${registry.url}/v2/team-z/probe/blobs/uploads/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });
    expect(direct.status).toBe(201);
    const token = await proxy.registryToken(['repository:team-a/app:pull,push']);
    const mp = multipart({ mount: digest, from: 'team-b/secret' });
    for (const [query, type, body] of [
      ['', 'application/x-www-form-urlencoded', form],
      [`?mount=${digest}&from=team-a%2Fapp`, 'application/x-www-form-urlencoded', form],
      ['', mp.type, mp.body],
      [`?mount=${digest}&from=team-b%2Fsecret`, 'application/x-www-form-urlencoded', form],
    ]) {
      const r = await fetch(`${proxy.url}/v2/team-a/app/blobs/uploads/${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': type! },
        body,
      });
      expect(r.status, `${query} ${type}`).toBe(400);
      expect(((await r.json()) as OciBody).errors[0]!.code).toBe('UNSUPPORTED'); // a form body, whatever the query
    }
    // nothing was mounted into team-a/app
    expect((await fetch(`${registry.url}/v2/team-a/app/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    // and a query mount from team-b/secret is dropped: a plain upload starts instead
    const q = await fetch(`${proxy.url}/v2/team-a/app/blobs/uploads/?mount=${digest}&from=team-b%2Fsecret`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(q.status).toBe(202);
    expect((await fetch(`${registry.url}/v2/team-a/app/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
  });
});

describe('an upstream under a path prefix', () => {
  let upstream: RecordingUpstream;
  let proxy: TestProxy;
  let token: string;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startProxy({ upstream: `${upstream.url}/reg/` });
    token = await proxy.registryToken(['repository:team-a/app:pull,push']);
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it('forwards under the prefix and hands clients Locations and Links under /v2/', async () => {
    const cases: [string, string][] = [
      ['/reg/v2/team-a/app/blobs/uploads/u1?_state=x', `${proxy.url}/v2/team-a/app/blobs/uploads/u1?_state=x`],
      [
        `${upstream.url}/reg/v2/team-a/app/blobs/uploads/u2?_state=y`,
        `${proxy.url}/v2/team-a/app/blobs/uploads/u2?_state=y`,
      ],
    ];
    for (const [given, expected] of cases) {
      upstream.handle((_req, res) => {
        res.writeHead(202, { location: given, link: '</reg/v2/team-a/app/tags/list?last=v1&n=1>; rel="next"' });
        res.end();
      });
      const r = await fetch(`${proxy.url}/v2/team-a/app/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(r.status).toBe(202);
      expect(r.headers.get('location')).toBe(expected);
      expect(r.headers.get('link')).toBe(`<${proxy.url}/v2/team-a/app/tags/list?last=v1&n=1>; rel="next"`);
    }
    expect(upstream.requests.map((r) => r.url)).toEqual([
      '/reg/v2/team-a/app/blobs/uploads/',
      '/reg/v2/team-a/app/blobs/uploads/',
    ]);
  });

  it('pushes and pulls with skopeo through a Distribution served at http.prefix', async () => {
    const bin = requireTool('docker-registry');
    const skopeo = requireTool('skopeo');
    const dir = mkdtempSync(join(tmpdir(), 'rap-prefix-'));
    const port = await freePort();
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: ${join(dir, 'data')}}\nhttp:\n  addr: 127.0.0.1:${port}\n  prefix: /reg/\n  secret: prefix-test\n`,
    );
    let logs = '';
    const child = spawn(bin, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    child.stderr!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    const base = `http://127.0.0.1:${port}`;
    let prefixed: TestProxy | undefined;
    try {
      let up = false;
      for (let i = 0; i < 200 && !up; i++) {
        up = await fetch(`${base}/reg/v2/`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      expect(up, logs).toBe(true);
      prefixed = await startProxy({ upstream: `${base}/reg` });
      const image = buildOciImage(join(dir, 'image'), { layers: 2, layerBytes: 64 * 1024 });
      const id = await prefixed.mintIdentity();
      const run = promisify(execFile);
      const host = new URL(prefixed.url).host;
      await run(
        skopeo,
        ['copy', '--dest-tls-verify=false', '--dest-creds', `x:${id}`, image.ref, `docker://${host}/team-a/app:v1`],
        { timeout: 60_000 },
      );
      await run(
        skopeo,
        [
          'copy',
          '--src-tls-verify=false',
          '--src-creds',
          `x:${id}`,
          `docker://${host}/team-a/app:v1`,
          `oci:${join(dir, 'pulled')}:v1`,
        ],
        {
          timeout: 60_000,
        },
      );
      // the registry has it under its prefix
      const tags = (await (await fetch(`${base}/reg/v2/team-a/app/tags/list`)).json()) as { tags: string[] };
      expect(tags.tags).toEqual(['v1']);
    } finally {
      await prefixed?.stop();
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses upstream URLs that cannot be a registry base at start-up', () => {
    for (const [url, problem] of [
      ['http://127.0.0.1:5000/?x=1', /query or fragment/],
      ['http://127.0.0.1:5000/reg#x', /query or fragment/],
      ['http://robot:pw@127.0.0.1:5000', /credentials/],
      ['http://127.0.0.1:5000/v2/', /without \/v2/],
      ['http://127.0.0.1:5000/reg/v2', /without \/v2/],
    ] as const) {
      let err: unknown;
      try {
        buildConfig({ upstream: { url } });
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(ConfigError);
      expect(String((err as Error).message), url).toMatch(/upstream\.url/);
      expect(String((err as Error).message), url).toMatch(problem);
    }
    expect(buildConfig({ upstream: { url: 'http://127.0.0.1:5000/reg/' } }).upstreams[0]!.url).toBe(
      'http://127.0.0.1:5000/reg',
    );
  });
});
