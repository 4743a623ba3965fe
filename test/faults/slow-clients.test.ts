import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { parseRaw } from '../helpers/raw-http.js';
import { startProxy, type TestProxy } from '../helpers/server.js';
import { startChildProxy, type ChildProxy } from '../helpers/child-proxy.js';
import { basicAuth } from '../support/token.js';

/**
 * Slow and stalled clients (issue 9, item 5): a request body the proxy reads itself has a deadline,
 * a connection on which nothing moves is closed, and connections are capped in total and per peer
 * address — without ever cutting a transfer that is slow but moving. Also (item 11): a request the
 * client aborted is logged and counted as aborted, not with the status it had started with.
 */

interface OciBody {
  errors: { code: string; message: string }[];
}

const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

/** Opens a connection (optionally from another loopback address) and sends `text`; resolves once connected. */
function open(
  port: number,
  text: string,
  localAddress?: string,
): Promise<Socket & { out: string; gone: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress }) as Socket & { out: string; gone: Promise<void> };
    s.out = '';
    s.gone = new Promise((r) => s.once('close', () => r()));
    s.on('data', (d) => (s.out += d.toString('latin1')));
    s.on('error', () => {});
    s.once('connect', () => {
      if (text) s.write(text);
      resolve(s);
    });
    s.once('error', reject);
    sockets.push(s);
  });
}

/** A request from a given loopback source address; resolves with status and body. */
function get(
  url: string,
  localAddress: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { localAddress, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

const STALLED_TOKEN_POST =
  'POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type=pass';

/** Waits until `cond` holds, polling; fails after `ms` (a bound, not a speed assertion). */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('request bodies and idle connections', () => {
  let upstream: RecordingUpstream;
  let proxy: TestProxy;
  let port: number;
  let push: string;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startProxy({
      upstream: upstream.url,
      config: {
        upstream: { url: upstream.url, timeout: '1s' },
        limits: {
          tokenPerClient: { rate: 0 },
          tokenGlobal: { rate: 0 },
          tokenBodyTimeout: '500ms',
          idleTimeout: '1500ms',
        },
      },
    });
    port = Number(new URL(proxy.url).port);
    push = await proxy.registryToken(['repository:team-a/app:pull,push']);
  });
  afterAll(async () => {
    await proxy.stop();
    await upstream.stop();
  });

  it('answers a /token POST whose body never completes with 408 and closes the connection', async () => {
    const s = await open(port, STALLED_TOKEN_POST);
    await Promise.race([s.gone, new Promise((r) => setTimeout(r, 5000))]);
    expect(s.destroyed).toBe(true);
    const out = parseRaw(s.out);
    expect(out.status).toBe(408);
    expect(out.headers).toMatch(/connection: close/i);
    expect((out.body as OciBody).errors[0]!.code).toBe('UNSUPPORTED');
    expect((out.body as OciBody).errors[0]!.message).toMatch(/did not arrive within 500 ms/);
    // a complete form is still served
    const form = new URLSearchParams({
      grant_type: 'password',
      username: 'x',
      password: await proxy.mintIdentity(),
      service: 'registry.test',
      scope: 'repository:team-a/app:pull',
    });
    const ok = await fetch(`${proxy.url}/token`, { method: 'POST', body: form });
    expect(ok.status).toBe(200);
  });

  it('closes a connection on which no bytes move for idleTimeout (a head that never completes)', async () => {
    const s = await open(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n');
    // headersTimeout (30 s, checked every 30 s) would hold it for up to a minute
    await Promise.race([s.gone, new Promise((r) => setTimeout(r, 5000))]);
    expect(s.destroyed).toBe(true);
  });

  it('closes a connection whose unread request body stalls after the answer', async () => {
    // answered (401) without reading the body; Node then waits for the rest of it to reuse the connection
    const s = await open(
      port,
      'POST /v2/team-a/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc',
    );
    await Promise.race([s.gone, new Promise((r) => setTimeout(r, 5000))]);
    expect(parseRaw(s.out).status).toBe(401);
    expect(s.destroyed).toBe(true);
  });

  it('never cuts a slow upload that keeps moving (gaps shorter than idleTimeout, in all much longer)', async () => {
    upstream.requests.length = 0;
    const chunks = 16; // one every 250 ms: ~4 s in all, idleTimeout 1.5 s (upstream.timeout 1 s)
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${proxy.url}/v2/team-a/app/blobs/uploads/abc?_state=x`, {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${push}`,
          'content-type': 'application/octet-stream',
          'content-length': String(chunks * 100),
        },
        agent: false,
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write(Buffer.alloc(100, 'x'));
        if (++sent === chunks) {
          clearInterval(tick);
          req.end();
        }
      }, 250);
    });
    expect(result.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.method).toBe('PATCH');
    expect(upstream.requests[0]!.bodyBytes).toBe(chunks * 100);
  });

  it('never cuts a slow download that keeps moving', async () => {
    const chunks = 16;
    upstream.handle((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(chunks * 100) });
      let sent = 0;
      const tick = setInterval(() => {
        res.write(Buffer.alloc(100, 'y'));
        if (++sent === chunks) {
          clearInterval(tick);
          res.end();
        }
      }, 250);
    });
    try {
      const r = await fetch(`${proxy.url}/v2/team-a/app/blobs/sha256:${'c'.repeat(64)}`, {
        headers: { authorization: `Bearer ${push}` },
      });
      expect(r.status).toBe(200);
      expect((await r.arrayBuffer()).byteLength).toBe(chunks * 100);
    } finally {
      upstream.handle(undefined as never);
    }
  });
});

describe('connection caps', () => {
  let upstream: RecordingUpstream;
  let proxy: TestProxy;
  let port: number;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startProxy({
      upstream: upstream.url,
      // token bodies may take a minute here: the caps alone must protect the other client
      config: {
        limits: {
          tokenPerClient: { rate: 0 },
          tokenGlobal: { rate: 0 },
          tokenBodyTimeout: '1m',
          maxConnectionsPerClient: 5,
          maxConnections: 40,
        },
      },
    });
    port = Number(new URL(proxy.url).port);
  });
  afterAll(async () => {
    await proxy.stop();
    await upstream.stop();
  });

  it('stalled /token bodies from one address beyond its cap do not keep another address from being served', async () => {
    // the attack of the review: stalled POST /token bodies, far more than the per-client cap
    const stalled: Awaited<ReturnType<typeof open>>[] = [];
    for (let i = 0; i < 30; i++) stalled.push(await open(port, STALLED_TOKEN_POST, '127.0.0.1'));
    // the five admitted ones are held (their bodies may take a minute); the others were refused and closed
    await until(() => stalled.filter((s) => !s.destroyed).length <= 5, 5000, 'refused connections to close');
    const refusedAnswers = stalled.filter((s) => s.out).map((s) => parseRaw(s.out));
    for (const a of refusedAnswers) expect(a.status).toBe(503);

    // another client address is served: ping and a token
    const ping = await get(`${proxy.url}/v2/`, '127.0.0.2');
    expect(ping.status).toBe(401);
    expect((JSON.parse(ping.body) as OciBody).errors[0]!.code).toBe('UNAUTHORIZED');
    const tok = await get(`${proxy.url}/token?service=registry.test&scope=repository:team-a/app:pull`, '127.0.0.2', {
      authorization: basicAuth(await proxy.mintIdentity()),
    });
    expect(tok.status).toBe(200);
    expect(JSON.parse(tok.body).token).toBeTruthy();

    // one more request from the capped address: a short 503 with an OCI body and Retry-After
    const extra = await open(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', '127.0.0.1');
    await Promise.race([extra.gone, new Promise((r) => setTimeout(r, 5000))]);
    const refused = parseRaw(extra.out);
    expect(refused.status).toBe(503);
    expect(refused.headers).toMatch(/retry-after: 1/i);
    expect(refused.headers).toMatch(/connection: close/i);
    expect((refused.body as OciBody).errors[0]!.code).toBe('UNAVAILABLE');
    expect((refused.body as OciBody).errors[0]!.message).toMatch(/too many connections from 127\.0\.0\.1/);

    // once its stalled connections are gone, the address is served again
    for (const s of stalled) s.destroy();
    await until(() => stalled.every((s) => s.destroyed), 2000, 'stalled sockets to close');
    let again = { status: 0, body: '' };
    for (let i = 0; i < 50 && again.status !== 401; i++) {
      again = await get(`${proxy.url}/v2/`, '127.0.0.1');
      if (again.status !== 401) await new Promise((r) => setTimeout(r, 20));
    }
    expect(again.status).toBe(401);
  });

  it('past the total cap: a probe is answered, anything else gets a short 503, beyond the reserve dropped; served again once below it', async () => {
    const held: Socket[] = [];
    // 8 addresses × 5 = the total cap of 40, each connection stalled in its head
    for (let a = 10; a < 18; a++)
      for (let i = 0; i < 5; i++) held.push(await open(port, 'GET /v2/ HTTP/1.1\r\n', `127.0.0.${a}`));
    // a liveness probe from an address with no connection open is still answered (issue 18 item 6)
    const probe = await get(`${proxy.url}/healthz`, '127.0.0.98');
    expect(probe.status).toBe(200);
    const over = await open(port, 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', '127.0.0.99');
    await Promise.race([over.gone, new Promise((r) => setTimeout(r, 5000))]);
    expect(over.destroyed).toBe(true);
    const refused = parseRaw(over.out);
    expect(refused.status).toBe(503);
    expect(refused.headers).toMatch(/retry-after: 1/i);
    expect((refused.body as OciBody).errors[0]!.message).toBe('the proxy is at its connection limit: retry');
    // the reserve past the cap (16) holds stalled heads for 2 s at most; more are dropped at accept
    const flood: Awaited<ReturnType<typeof open>>[] = [];
    for (let i = 0; i < 40; i++) flood.push(await open(port, 'GET /v2/ HTTP/1.1\r\n', '127.0.0.97'));
    await until(
      () => flood.filter((s) => s.destroyed).length >= 40 - 16,
      5000,
      'connections past the reserve to be dropped',
    );
    expect(flood.every((s) => s.out === '')).toBe(true);
    await until(() => flood.every((s) => s.destroyed), 5000, 'the reserve to be freed');
    for (const s of held) s.destroy();
    await until(() => held.every((s) => s.destroyed), 2000, 'held sockets to close');
    let again = { status: 0, body: '' };
    for (let i = 0; i < 50 && again.status !== 401; i++) {
      again = await get(`${proxy.url}/v2/`, '127.0.0.99').catch(() => ({ status: 0, body: '' }));
      if (again.status !== 401) await new Promise((r) => setTimeout(r, 20));
    }
    expect(again.status).toBe(401);
  });
});

describe('the total cap follows the open-files limit (issue 18 item 6)', () => {
  let upstream: RecordingUpstream;
  let proxy: ChildProxy;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    // the built proxy under `ulimit -n 512` with the default maxConnections (2048); token bodies may take a minute
    proxy = await startChildProxy(
      upstream.url,
      { limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 }, tokenBodyTimeout: '1m' } },
      { openFiles: 512 },
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it('600 stalled /token bodies from 200 addresses do not lock out /healthz; the start-up log names the cap it derived', async () => {
    const port = Number(new URL(proxy.url).port);
    const stalled: Awaited<ReturnType<typeof open>>[] = [];
    for (let a = 0; a < 200; a++)
      for (let i = 0; i < 3; i++) stalled.push(await open(port, STALLED_TOKEN_POST, `127.0.1.${a + 1}`));
    // the cap's worth are held (bodies may take a minute); the rest are answered 503 or dropped
    await until(() => stalled.filter((s) => !s.destroyed).length <= 184, 10_000, 'connections past the cap to close');
    // (the harness's keep-alive connection from its start-up /healthz check may count too)
    expect(stalled.filter((s) => !s.destroyed).length).toBeGreaterThanOrEqual(182);

    const health = await get(`${proxy.url}/healthz`, '127.0.0.1');
    expect(health.status).toBe(200);
    const ready = await get(`${proxy.url}/readyz`, '127.0.0.2');
    expect(ready.status).toBe(200); // answered: probes pass the cap, and the upstream is up
    const busy = await get(`${proxy.url}/v2/`, '127.0.0.3');
    expect(busy.status).toBe(503);
    expect((JSON.parse(busy.body) as OciBody).errors[0]!.code).toBe('UNAVAILABLE');

    for (const s of stalled) s.destroy();
    let again = { status: 0, body: '' };
    for (let i = 0; i < 100 && again.status !== 401; i++) {
      again = await get(`${proxy.url}/v2/`, '127.0.0.3').catch(() => ({ status: 0, body: '' }));
      if (again.status !== 401) await new Promise((r) => setTimeout(r, 50));
    }
    expect(again.status).toBe(401);

    const warning = proxy
      .output()
      .split('\n')
      .filter((l) => l.includes('limits.maxConnections'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warning).toHaveLength(1);
    expect(warning[0]).toMatchObject({ level: 40, maxConnections: 184, configured: 2048, openFilesLimit: 512 });
    expect(warning[0]!.msg).toMatch(/capped at 184; raise the limit \(ulimit -n, LimitNOFILE=\) to 4240/);
  });
});

describe('aborted requests (item 11)', () => {
  let upstream: RecordingUpstream;
  let proxy: TestProxy;
  let pull: string;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startProxy({
      upstream: upstream.url,
      config: { limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 0 } } },
    });
    pull = await proxy.registryToken(['repository:team-a/app:pull']);
  });
  afterAll(async () => {
    await proxy.stop();
    await upstream.stop();
  });

  /** The record a manifest or blob request leaves at info: its audit event (the access line is then at debug). */
  function requestLines(path: string): Record<string, unknown>[] {
    const reference = path.split('/').pop();
    return proxy.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'registry access' && l.reference === reference);
  }

  async function metric(status: string, path = 'v2'): Promise<number> {
    const text = await (await fetch(`${proxy.url}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`rap_http_requests_total{route="${path}",method="GET",status="${status}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  it('counts and logs a download the client abandoned mid-body as aborted, not 200', async () => {
    const path = `/v2/team-a/app/blobs/sha256:${'d'.repeat(64)}`;
    let upstreamRes: import('node:http').ServerResponse | undefined;
    upstream.handle((_req, res) => {
      upstreamRes = res;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000000' });
      res.write(Buffer.alloc(1000, 'z')); // then stalls
    });
    const before200 = await metric('200');
    try {
      await new Promise<void>((resolve) => {
        const req = httpRequest(
          `${proxy.url}${path}`,
          { headers: { authorization: `Bearer ${pull}` }, agent: false },
          (res) => {
            res.once('data', () => req.destroy()); // the client gives up after the first bytes
            res.on('error', () => {});
          },
        );
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end();
      });
      await until(() => requestLines(path).length === 1, 3000, 'the access log line');
      const line = requestLines(path)[0]!;
      expect(line.status).toBe('aborted');
      expect(line.statusSent).toBe(200);
      expect(line.msg).toBe('registry access');
      // the bytes that went through before the cut (counted as they pass, not when the upstream side closes)
      expect(line.bytes).toBe(1000);
      expect(await metric('aborted')).toBe(1);
      expect(await metric('200')).toBe(before200);
    } finally {
      upstreamRes?.destroy();
      upstream.handle(undefined as never);
    }
  });

  it('counts a request abandoned before any answer as aborted', async () => {
    const path = '/v2/team-a/app/manifests/slow';
    upstream.handle(() => {}); // the upstream never answers this one
    try {
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${pull}` }, agent: false });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end();
        setTimeout(() => req.destroy(), 200);
      });
      await until(
        () => requestLines(path).length === 1,
        3000,
        `the access log line in ${proxy.logs.slice(-4).join('\n')}`,
      );
      const line = requestLines(path)[0]!;
      expect(line.status).toBe('aborted');
      expect(line.statusSent).toBeUndefined();
      expect(line.msg).toBe('registry access');
      expect(await metric('aborted')).toBe(2);
    } finally {
      upstream.handle(undefined as never);
    }
  });
});
