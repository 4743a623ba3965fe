import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { rawRequest } from '../../helpers/raw-http.js';

const D = `sha256:${'b'.repeat(64)}`;
let upstream: RecordingUpstream;
let proxy: TestProxy;
let pullToken: string;
let pushToken: string;

const raw = (port: number, text: string): Promise<string> => rawRequest(port, text);

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'rap-fwd-'));
  writeFileSync(join(dir, 'pw'), 's3cret\n');
  proxy = await startProxy({
    upstream: upstream.url,
    config: {
      upstream: {
        url: upstream.url,
        timeout: '1s',
        auth: { type: 'basic', username: 'robot', passwordFile: join(dir, 'pw') },
      },
    },
  });
  pullToken = await proxy.registryToken(['repository:team-a/app:pull']);
  pushToken = await proxy.registryToken(['repository:team-a/app:pull,push']);
});
afterAll(async () => {
  await proxy.stop();
  await upstream.stop();
});
beforeEach(() => {
  upstream.requests.length = 0;
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end('{}');
  });
});

describe('forwarding hygiene', () => {
  it("never forwards the client's Authorization or Cookie; sends the proxy's own credentials", async () => {
    const r = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${pullToken}`, cookie: 'session=abc', 'proxy-authorization': 'Basic eDp5' },
    });
    expect(r.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const h = upstream.requests[0]!.headers;
    expect(h.authorization).toBe(`Basic ${Buffer.from('robot:s3cret').toString('base64')}`);
    expect(JSON.stringify(h)).not.toContain(pullToken);
    expect(h.cookie).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h.host).toBe(new URL(upstream.url).host);
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('rewrites Location (relative and absolute upstream forms) but passes storage redirects untouched', async () => {
    const cases: [string, string][] = [
      ['/v2/team-a/app/blobs/uploads/u1?_state=x', `${proxy.url}/v2/team-a/app/blobs/uploads/u1?_state=x`],
      [
        `${upstream.url}/v2/team-a/app/blobs/uploads/u2?_state=y`,
        `${proxy.url}/v2/team-a/app/blobs/uploads/u2?_state=y`,
      ],
      [
        `${upstream.url.replace('http:', 'https:')}/v2/team-a/app/blobs/uploads/u3`,
        `${proxy.url}/v2/team-a/app/blobs/uploads/u3`,
      ],
      [
        'https://bucket.s3.example.com/docker/blob?X-Amz-Signature=abc',
        'https://bucket.s3.example.com/docker/blob?X-Amz-Signature=abc',
      ],
    ];
    for (const [given, expected] of cases) {
      upstream.handle((_req, res) => {
        res.writeHead(given.startsWith('https://bucket') ? 307 : 202, {
          location: given,
          'docker-upload-uuid': 'u1',
          range: '0-0',
        });
        res.end();
      });
      const r = await fetch(`${proxy.url}/v2/team-a/app/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pushToken}` },
        redirect: 'manual',
      });
      expect(r.headers.get('location')).toBe(expected);
      expect(r.headers.get('docker-upload-uuid')).toBe('u1');
    }
  });

  it('preserves Range, Content-Range, Docker-* and OCI-* headers both ways and passes upstream errors through', async () => {
    upstream.handle((req, res) => {
      res.writeHead(206, {
        'content-range': 'bytes 0-3/10',
        'docker-content-digest': D,
        'oci-subject': D,
        'content-length': '4',
        'x-seen-range': String(req.headers.range),
      });
      res.end('abcd');
    });
    const r = await fetch(`${proxy.url}/v2/team-a/app/blobs/${D}`, {
      headers: { authorization: `Bearer ${pullToken}`, range: 'bytes=0-3' },
    });
    expect(r.status).toBe(206);
    expect(await r.text()).toBe('abcd');
    expect(r.headers.get('content-range')).toBe('bytes 0-3/10');
    expect(r.headers.get('docker-content-digest')).toBe(D);
    expect(r.headers.get('oci-subject')).toBe(D);
    expect(r.headers.get('x-seen-range')).toBe('bytes=0-3');
    upstream.handle((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
    });
    const nf = await fetch(`${proxy.url}/v2/team-a/app/manifests/nope`, {
      headers: { authorization: `Bearer ${pullToken}` },
    });
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('MANIFEST_UNKNOWN');
  });

  it("never lets the upstream's own challenge reach the client", async () => {
    upstream.handle((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="https://upstream.internal/token",service="internal"' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}');
    });
    const r = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${pullToken}` },
    });
    expect(r.status).toBe(502);
    expect(r.headers.get('www-authenticate')).toBeNull();
  });

  it('sends nothing upstream for unauthorized, insufficient, or malformed requests', async () => {
    const attempts: [string, RequestInit, number][] = [
      ['/v2/team-a/app/manifests/v1', {}, 401],
      ['/v2/team-a/app/manifests/v1', { headers: { authorization: 'Bearer not.a.token' } }, 401],
      [
        '/v2/team-a/app/manifests/v1',
        { method: 'PUT', headers: { authorization: `Bearer ${pullToken}` }, body: '{}' },
        401,
      ],
      ['/v2/team-b/app/manifests/v1', { headers: { authorization: `Bearer ${pullToken}` } }, 401],
      // fetch resolves the dots: this asks for team-b/app
      ['/v2/team-a/app/../../team-b/app/manifests/v1', { headers: { authorization: `Bearer ${pullToken}` } }, 401],
      ['/v2/team-a%2fapp/manifests/v1', { headers: { authorization: `Bearer ${pullToken}` } }, 400],
      ['/v2/team-a/app/unknown', { headers: { authorization: `Bearer ${pullToken}` } }, 404],
      ['/v2/_catalog', { headers: { authorization: `Bearer ${pullToken}` } }, 401],
    ];
    for (const [path, init, status] of attempts) {
      const r = await fetch(`${proxy.url}${path}`, init);
      expect(r.status, path).toBe(status);
      expect(r.headers.get('content-type')).toMatch(/json/);
      expect(((await r.json()) as { errors: unknown[] }).errors).toHaveLength(1);
    }
    // raw paths fetch would normalize
    const port = Number(new URL(proxy.url).port);
    for (const p of [
      '/v2/team-a/app/../../team-b/app/manifests/v1',
      '/v2/team-a/./app/manifests/v1',
      '/v2//team-a/app/manifests/v1',
      '/v2/team-a/app/manifests/v1/../../../../_catalog',
    ]) {
      const out = await raw(
        port,
        `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pullToken}\r\nConnection: close\r\n\r\n`,
      );
      expect(out.split('\r\n')[0], p).toBe('HTTP/1.1 400 Bad Request');
    }
    expect(upstream.requests).toHaveLength(0);
  });

  it('refuses repeated Authorization headers and request-smuggling shapes', async () => {
    const port = Number(new URL(proxy.url).port);
    const twice = await raw(
      port,
      `GET /v2/team-a/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pullToken}\r\nAuthorization: Bearer ${pushToken}\r\nConnection: close\r\n\r\n`,
    );
    expect(twice).toMatch(/^HTTP\/1\.1 401/);
    const smuggle = await raw(
      port,
      `POST /v2/team-a/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pushToken}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/team-b/x/manifests/y HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(smuggle).toMatch(/^HTTP\/1\.1 400/);
    const crlf = await raw(
      port,
      `GET /v2/team-a/app/manifests/v1%0d%0aX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pullToken}\r\nConnection: close\r\n\r\n`,
    );
    expect(crlf).toMatch(/^HTTP\/1\.1 400/);
    const huge = await raw(
      port,
      `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431/);
    expect(upstream.requests).toHaveLength(0);
  });

  it('answers 502 when the upstream is down and 504 when it is too slow, with OCI bodies', async () => {
    upstream.handle(() => {
      /* never answer */
    });
    const slow = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${pullToken}` },
    });
    expect(slow.status).toBe(504);
    expect(((await slow.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAVAILABLE');
    const dead = await startProxy({ upstream: 'http://127.0.0.1:1' });
    const t = await dead.registryToken(['repository:team-a/app:pull']);
    const down = await fetch(`${dead.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: `Bearer ${t}` } });
    expect(down.status).toBe(502);
    expect(((await down.json()) as { errors: { code: string; message: string }[] }).errors[0]!.message).toMatch(
      /unreachable/,
    );
    await dead.stop();
  });

  it('aborts the upstream request when the client goes away mid-upload', async () => {
    let upstreamClosed = false;
    const done = new Promise<void>((resolve) => {
      upstream.onStart((req) => {
        req.on('close', () => {
          upstreamClosed = true;
          resolve();
        });
      });
    });
    const req = httpRequest(`${proxy.url}/v2/team-a/app/blobs/uploads/abc`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${pushToken}`, 'content-type': 'application/octet-stream' },
    });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(64 * 1024));
    await new Promise((r) => setTimeout(r, 200));
    req.destroy();
    await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
    upstream.onStart(undefined);
    expect(upstreamClosed).toBe(true);
  });

  it('answers a TLS ClientHello on the plain port with a quiet 400 and keeps serving', async () => {
    const port = Number(new URL(proxy.url).port);
    const errorsBefore = proxy.logs.filter((l) => l.includes('"level":50')).length;
    const hello = Buffer.from(
      '160301020001000200030300000000000000000000000000000000000000000000000000000000000000',
      'hex',
    );
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write(hello));
      let o = '';
      s.on('data', (d) => (o += d.toString('latin1')));
      s.on('close', () => resolve(o));
      s.setTimeout(2000, () => s.destroy());
    });
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(proxy.logs.filter((l) => l.includes('"level":50')).length).toBe(errorsBefore);
    expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
  });
});
