import { createServer, request, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange, upstreamHeaders, upstreamPath } from '../../../src/proxy/exchange.js';

describe('the upstream request head', () => {
  it("joins the upstream's path prefix and the route's path with one slash", () => {
    expect(upstreamPath(new URL('http://r:5000'), '/v2/a/manifests/1')).toBe('/v2/a/manifests/1');
    expect(upstreamPath(new URL('http://r:5000/prefix'), '/v2/a/manifests/1?x=1')).toBe('/prefix/v2/a/manifests/1?x=1');
    expect(upstreamPath(new URL('http://r:5000/prefix/'), '/v2/')).toBe('/prefix/v2/');
  });

  it("sends the upstream's Host, no Trailer, no HTTP/2 pseudo-headers, and leaves the client's headers as they were", () => {
    const headers: IncomingHttpHeaders = {
      host: 'proxy.example',
      trailer: 'x',
      accept: 'a',
      ':authority': 'proxy.example',
    };
    const out = upstreamHeaders({ headers, httpVersionMajor: 2 }, new URL('https://up.example:8443/p'));
    expect(out).toEqual({ host: 'up.example:8443', accept: 'a' });
    expect(headers.host).toBe('proxy.example');
    expect(upstreamHeaders({ headers: { host: 'h' }, httpVersionMajor: 1 }, new URL('https://up.example')).host).toBe(
      'up.example',
    );
  });
});

describe('one exchange through node:http', () => {
  let upstream: Server;
  let front: Server;
  let seen: { method?: string; url?: string; headers: IncomingHttpHeaders }[] = [];
  const agent = new Agent({ keepAlive: true });
  let port = 0;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      req.on('end', () => {
        res.writeHead(201, 'Made', { 'x-up': '1', 'docker-content-digest': 'sha256:0' });
        res.end(req.method === 'HEAD' ? undefined : 'body');
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const target = { url: new URL(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/prefix`), agent };
    front = createServer((req, res) => {
      req.url = '/v2/a/manifests/1';
      exchange(req, res, target, {
        onSocket: () => {},
        onResponse: () => {},
        onError: () => res.destroy(),
        selfHandleResponse: false,
      });
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    port = (front.address() as AddressInfo).port;
  });
  afterAll(async () => {
    agent.destroy();
    await new Promise((r) => front.close(r));
    await new Promise((r) => upstream.close(r));
  });

  const send = (method: string) =>
    new Promise<{ status?: number; message?: string; headers: IncomingHttpHeaders; body: string }>(
      (resolve, reject) => {
        const req = request({ port, host: '127.0.0.1', method, path: '/anything' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () =>
            resolve({ status: res.statusCode, message: res.statusMessage, headers: res.headers, body }),
          );
        });
        req.on('error', reject);
        req.end();
      },
    );

  it("forwards method, path under the prefix and Host; copies the upstream's status, message, headers and body", async () => {
    seen = [];
    const got = await send('GET');
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/prefix/v2/a/manifests/1' });
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${(upstream.address() as AddressInfo).port}`);
    expect(got).toMatchObject({ status: 201, message: 'Made', body: 'body' });
    expect(got.headers).toMatchObject({ 'x-up': '1', 'docker-content-digest': 'sha256:0', connection: 'keep-alive' });
  });

  it('sends a DELETE without Content-Length as `Content-Length: 0`', async () => {
    seen = [];
    await send('DELETE');
    expect(seen[0]!.headers['content-length']).toBe('0');
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
  });
});
