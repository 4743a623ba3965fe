import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { startProxy, type TestProxy } from '../helpers/server.js';
import type { TokenAnswer } from '../support/token.js';

/** /metrics, /healthz, /readyz and request ids in logs, read the way Prometheus and an operator read them. */
let upstream: RecordingUpstream;
let proxy: TestProxy;

/** The /token answer for a `ci` identity (these tests count and trace token requests, granted or not). */
async function token(scopes: string[], claims?: Record<string, unknown>): Promise<TokenAnswer> {
  return proxy.requestToken(await proxy.mintIdentity(claims), scopes);
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const got = Object.fromEntries(
      (m[1] ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=').map((x) => x.replace(/^"|"$/g, '')) as [string, string]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[2]);
  }
  return undefined;
}

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  proxy = await startProxy({ upstream: upstream.url });
});
afterAll(async () => {
  await proxy.stop();
  await upstream.stop();
});

describe('/metrics', () => {
  it('counts requests by route and status, token decisions by issuer and result, bytes and upstream latency', async () => {
    const ok = (await token(['repository:team-a/app:pull,push'])).body as { token: string };
    expect((await token(['repository:team-b/app:pull'])).status).toBe(200); // granted nothing: denied
    expect((await token(['repository:team-a/app:pull,delete'])).status).toBe(200); // granted pull only: partial
    const bad = await fetch(`${proxy.url}/token?service=registry.test`, {
      headers: { authorization: `Basic ${Buffer.from('x:not-a-jwt').toString('base64')}` },
    });
    expect(bad.status).toBe(401);
    upstream.handle((req, res) => {
      const body = req.method === 'PATCH' ? Buffer.alloc(0) : Buffer.alloc(1000);
      res.writeHead(req.method === 'PATCH' ? 202 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(body.length),
      });
      res.end(body);
    });
    const auth = { authorization: `Bearer ${ok.token}` };
    await (await fetch(`${proxy.url}/v2/team-a/app/blobs/sha256:${'1'.repeat(64)}`, { headers: auth })).arrayBuffer();
    await (
      await fetch(`${proxy.url}/v2/team-a/app/blobs/uploads/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d`, {
        method: 'PATCH',
        headers: auth,
        body: Buffer.alloc(5000),
      })
    ).arrayBuffer();
    await (await fetch(`${proxy.url}/v2/team-b/app/manifests/v1`, { headers: auth })).arrayBuffer();

    const res = await fetch(`${proxy.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE rap_http_requests_total counter');
    expect(sample(text, 'rap_http_requests_total', { route: 'token', method: 'GET', status: '200' })).toBe(3);
    expect(sample(text, 'rap_http_requests_total', { route: 'token', method: 'GET', status: '401' })).toBe(1);
    expect(sample(text, 'rap_http_requests_total', { route: 'v2', method: 'GET', status: '401' })).toBe(1);
    expect(sample(text, 'rap_token_decisions_total', { issuer: 'ci', result: 'granted' })).toBe(1);
    expect(sample(text, 'rap_token_decisions_total', { issuer: 'ci', result: 'partial' })).toBe(1);
    expect(sample(text, 'rap_token_decisions_total', { issuer: 'ci', result: 'denied' })).toBe(1);
    expect(sample(text, 'rap_token_decisions_total', { issuer: 'unknown', result: 'refused' })).toBe(1);
    expect(sample(text, 'rap_bytes_streamed_total', { direction: 'download' })).toBe(1000);
    expect(sample(text, 'rap_bytes_streamed_total', { direction: 'upload' })).toBe(5000);
    expect(sample(text, 'rap_upstream_response_seconds_count', { route: 'blob', status: '200' })).toBe(1);
    expect(sample(text, 'rap_upstream_response_seconds_bucket', { route: 'upload', status: '202', le: '+Inf' })).toBe(
      1,
    );
    expect(text).toContain('# TYPE rap_jwks_refreshes_total counter');
    expect(sample(text, 'rap_http_requests_in_flight')).toBe(1);
    expect(sample(text, 'rap_process_resident_memory_bytes')).toBeGreaterThan(0);
    // never a token or a subject in a label
    expect(text).not.toContain(ok.token.slice(0, 20));
    expect(text).not.toContain('job-42');
  });
});

describe('logs', () => {
  it('a partial or denied token decision carries the reason the client prints; the listening line names its fields once', () => {
    const audit = proxy.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.audit === 'token');
    const denied = audit.find((l) => l.result === 'denied');
    expect(denied?.message).toMatch(
      / was refused pull on repository team-b\/app: no rule grants pull\. Check with: registry-auth-proxy policy test /,
    );
    expect(audit.find((l) => l.result === 'partial')?.message).toMatch(
      / was refused delete on repository team-a\/app: /,
    );
    expect(audit.find((l) => l.result === 'granted')).not.toHaveProperty('message');
    const listening = proxy.logs.find((l) => l.includes('"registry-auth-proxy listening"'))!;
    // pino writes what it is given: a field given twice is in the line twice, and JSON readers keep only one
    expect(listening.match(/"service":/g)).toHaveLength(1);
    expect(JSON.parse(listening)).toMatchObject({ service: 'registry-auth-proxy', tokenService: 'registry.test' });
  });
});

describe('/healthz and /readyz', () => {
  it('are JSON, live while the upstream is down, and ready only when the upstream answers', async () => {
    const h = await fetch(`${proxy.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${proxy.url}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready' });

    const dead = await startProxy({ upstream: 'http://127.0.0.1:9' });
    expect((await fetch(`${dead.url}/healthz`)).status).toBe(200);
    const nr = await fetch(`${dead.url}/readyz`);
    expect(nr.status).toBe(503);
    const body = (await nr.json()) as { status: string; reasons: string[] };
    expect(body.status).toBe('not ready');
    // which check failed, not the upstream's address or socket error (those are logged)
    expect(body.reasons).toEqual(['upstream unreachable']);
    expect(dead.logs.some((l) => l.includes('readiness: upstream unreachable') && l.includes('127.0.0.1:9'))).toBe(
      true,
    );
    await dead.stop();
  });

  it('when shutting down: an in-flight response finishes and closes its connection', async () => {
    const slow = await startRecordingUpstream();
    slow.handle((_req, res) => setTimeout(() => res.end('{}'), 400));
    const p = await startProxy({ upstream: slow.url });
    const pull = await p.registryToken(['repository:team-a/app:pull']);
    const inflight = fetch(`${p.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: `Bearer ${pull}` } });
    await new Promise((r) => setTimeout(r, 150));
    const stopping = p.runtime.stop(3000);
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.headers.get('connection')).toBe('close');
    await stopping;
    await slow.stop();
  });
});

describe('request ids', () => {
  it('answers with X-Request-Id and tags every log line of that request with it', async () => {
    const r = await token(['repository:team-a/app:pull']);
    const id = r.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const lines = proxy.logs
      .filter((l) => l.includes(id!))
      .map((l) => JSON.parse(l) as { msg: string; requestId: string });
    expect(lines.map((l) => l.msg).sort()).toEqual(['request', 'token decision']);

    // a caller's own id is kept when it is plain, replaced when it is not
    const mine = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { 'x-request-id': 'trace-123.abc', authorization: 'Bearer garbage' },
    });
    expect(mine.headers.get('x-request-id')).toBe('trace-123.abc');
    const rejected = proxy.logs
      .filter((l) => l.includes('"requestId":"trace-123.abc"'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(rejected).toContain('rejected registry token');
    expect(rejected).toContain('request');
    const hostile = await fetch(`${proxy.url}/healthz`, {
      headers: { 'x-request-id': `"}{"evil":1 ${'x'.repeat(100)}` },
    });
    expect(hostile.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('carries the id into upstream failure logs raised from socket events', async () => {
    upstream.handle((_req, res) => res.socket?.destroy());
    const ok = (await token(['repository:team-a/app:pull'])).body;
    const r = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
      headers: { authorization: `Bearer ${ok.token}`, 'x-request-id': 'upstream-fail-1' },
    });
    expect(r.status).toBe(502);
    const line = proxy.logs.find((l) => l.includes('upstream request failed'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!).requestId).toBe('upstream-fail-1');
  });
});
