import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { startProxy, type TestProxy } from '../helpers/server.js';

/**
 * The upstream misbehaves: down, refusing mid-handshake, slow to answer, stalling or resetting in the
 * middle of a body. The client always gets either an OCI error (when no response has started) or a
 * connection that is visibly cut (never a silently truncated "success"), within a bounded time, and
 * the proxy keeps serving.
 */
let upstream: RecordingUpstream;
let proxy: TestProxy;
let pull: string;
let push: string;

interface Outcome {
  status?: number;
  body: string;
  error?: string;
  ms: number;
}

/** A request whose outcome is recorded whatever happens: status and body, or the transport error. */
function attempt(
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | ((req: ReturnType<typeof httpRequest>) => void);
  } = {},
): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers });
    let status: number | undefined;
    let body = '';
    const done = (error?: string) => resolve({ status, body, error, ms: performance.now() - started });
    req.on('response', (res) => {
      status = res.statusCode;
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d.length > 2000 ? '' : d));
      res.on('end', () => done());
      res.on('error', (e) => done(e.message));
      res.on('aborted', () => done('aborted'));
    });
    req.on('error', (e) => done(e.message));
    if (typeof init.body === 'function') init.body(req);
    else req.end(init.body);
  });
}

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  proxy = await startProxy({
    upstream: upstream.url,
    config: { upstream: { url: upstream.url, timeout: '1s' }, limits: { tokenPerClient: { rate: 0 } } },
  });
  pull = await proxy.registryToken(['repository:team-a/app:pull']);
  push = await proxy.registryToken(['repository:team-a/app:pull,push']);
});
afterAll(async () => {
  await proxy.stop();
  await upstream.stop();
});
beforeEach(() => {
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});

async function stillServes(): Promise<void> {
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  const r = await attempt(`${proxy.url}/v2/team-a/app/manifests/ok`, { headers: { authorization: `Bearer ${pull}` } });
  expect(r.status).toBe(200);
}

function errorCode(o: Outcome): string {
  return (JSON.parse(o.body) as { errors: { code: string }[] }).errors[0]!.code;
}

describe('upstream faults', () => {
  it('down: 502 with an OCI body naming the problem', async () => {
    const dead = await startProxy({ upstream: 'http://127.0.0.1:9' });
    const r = await attempt(`${dead.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${await dead.registryToken(['repository:team-a/app:pull'])}` },
    });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('UNAVAILABLE');
    expect(r.body).toMatch(/unreachable \(ECONNREFUSED\)/);
    await dead.stop();
  });

  it('accepting then dropping connections: 502, not a hang', async () => {
    const sockets = new Set<Socket>();
    const rude: Server = createServer((s) => {
      sockets.add(s);
      s.once('data', () => s.destroy());
    });
    await new Promise<void>((r) => rude.listen(0, '127.0.0.1', r));
    const port = (rude.address() as { port: number }).port;
    const p = await startProxy({
      upstream: `http://127.0.0.1:${port}`,
      config: { upstream: { url: `http://127.0.0.1:${port}`, timeout: '1s' } },
    });
    const r = await attempt(`${p.url}/v2/team-a/app/blobs/sha256:${'c'.repeat(64)}`, {
      headers: { authorization: `Bearer ${await p.registryToken(['repository:team-a/app:pull'])}` },
    });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('UNAVAILABLE');
    await p.stop();
    rude.close();
  });

  it('slow to answer: 504 after upstream.timeout, not later', async () => {
    upstream.handle(() => undefined);
    const r = await attempt(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${pull}` },
    });
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe('UNAVAILABLE');
    expect(r.ms).toBeLessThan(5000);
    await stillServes();
  });

  it('resetting in the middle of a pulled blob: the client sees the cut, never a short success', async () => {
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(4 << 20) });
      res.write(Buffer.alloc(256 * 1024, 1));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const r = await attempt(`${proxy.url}/v2/team-a/app/blobs/sha256:${'d'.repeat(64)}`, {
      headers: { authorization: `Bearer ${pull}` },
    });
    expect(r.status).toBe(200);
    expect(r.error).toBeDefined();
    await stillServes();
  });

  it('stalling in the middle of a pulled blob: the connection is cut after the idle timeout', async () => {
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1 << 20) });
      res.write(Buffer.alloc(64 * 1024, 1)); // ...and nothing more
    });
    const r = await attempt(`${proxy.url}/v2/team-a/app/blobs/sha256:${'e'.repeat(64)}`, {
      headers: { authorization: `Bearer ${pull}` },
    });
    expect(r.error).toBeDefined();
    expect(r.ms).toBeLessThan(5000);
    await stillServes();
  });

  it('resetting during an upload: 502 with an OCI body, and the proxy keeps serving', async () => {
    upstream.onStart((req) => {
      let got = 0;
      req.on('data', (c: Buffer) => {
        got += c.length;
        if (got > 128 * 1024) req.socket.destroy();
      });
    });
    const r = await attempt(`${proxy.url}/v2/team-a/app/blobs/uploads/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${push}`, 'content-type': 'application/octet-stream' },
      body: (req) => {
        let sent = 0;
        const pump = () => {
          while (sent < 8 << 20) {
            sent += 64 * 1024;
            if (!req.write(Buffer.alloc(64 * 1024))) return void req.once('drain', pump);
          }
          req.end();
        };
        req.on('error', () => undefined);
        pump();
      },
    });
    upstream.onStart(undefined);
    // Either the 502 reaches the client, or (if the client was still sending) the cut does.
    if (r.status !== undefined) {
      expect(r.status).toBe(502);
      expect(errorCode(r)).toBe('UNAVAILABLE');
    } else {
      expect(r.error).toBeDefined();
    }
    await stillServes();
  });

  it("answering 5xx: passed through unchanged (the client sees the registry's own error)", async () => {
    upstream.handle((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"storage backend down"}]}');
    });
    const r = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: `Bearer ${pull}` } });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('7');
    expect(await r.text()).toContain('storage backend down');
  });
});
