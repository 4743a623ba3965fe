import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { startProxy, type TestProxy } from '../../helpers/server.js';

/** /token rate limits: per client IP and global, answered with 429, Retry-After and an OCI body. */
const started: TestProxy[] = [];
afterAll(async () => {
  for (const p of started) await p.stop();
});

function tokenFrom(
  p: TestProxy,
  localAddress: string,
  identity: string,
): Promise<{ status: number; retryAfter?: string; body: { errors?: { code: string; message: string }[]; error?: string; token?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(`${p.url}/token?service=registry.test&scope=repository:team-a/app:pull`, {
      localAddress,
      headers: { authorization: `Basic ${Buffer.from(`x:${identity}`).toString('base64')}` },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] as string | undefined, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('/token rate limits', () => {
  it('limits each client IP separately, with 429 and Retry-After, before verifying anything', async () => {
    const p = await startProxy({ config: { limits: { tokenPerClient: { rate: 0.5, burst: 3 }, tokenGlobal: { rate: 0 } } } });
    started.push(p);
    const id = await p.mintIdentity();
    for (let i = 0; i < 3; i++) expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    const auditBefore = p.logs.filter((l) => l.includes('"audit":"token"')).length;
    const limited = await tokenFrom(p, '127.0.0.1', id);
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBe('2');
    expect(limited.body.errors?.[0]?.code).toBe('TOOMANYREQUESTS');
    expect(limited.body.errors?.[0]?.message).toMatch(/too many token requests from 127\.0\.0\.1: retry in 2s/);
    expect(limited.body.error).toBe('temporarily_unavailable');
    expect(limited.body.token).toBeUndefined();
    // refused before the identity token was even looked at: no audit line
    expect(p.logs.filter((l) => l.includes('"audit":"token"')).length).toBe(auditBefore);
    // another client is not affected
    expect((await tokenFrom(p, '127.0.0.2', id)).status).toBe(200);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    expect(metrics).toMatch(/rap_rate_limited_total\{scope="client"\} 1/);
  });

  it('applies the global budget across all clients', async () => {
    const p = await startProxy({ config: { limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 1, burst: 2 } } } });
    started.push(p);
    const id = await p.mintIdentity();
    expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    expect((await tokenFrom(p, '127.0.0.2', id)).status).toBe(200);
    const third = await tokenFrom(p, '127.0.0.3', id);
    expect(third.status).toBe(429);
    expect(third.retryAfter).toBe('1');
    expect(third.body.errors?.[0]?.message).toMatch(/at capacity/);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await tokenFrom(p, '127.0.0.3', id)).status).toBe(200);
  });

  it('behind a trusted proxy, limits each forwarded client and records its address', async () => {
    const p = await startProxy({ config: { trustedProxies: ['127.0.0.0/8'], limits: { tokenPerClient: { rate: 0.5, burst: 1 }, tokenGlobal: { rate: 0 } } } });
    started.push(p);
    const id = await p.mintIdentity();
    const from = (xff: string) =>
      fetch(`${p.url}/token?service=registry.test&scope=repository:team-a/app:pull`, {
        headers: { authorization: `Basic ${Buffer.from(`x:${id}`).toString('base64')}`, 'x-forwarded-for': xff },
      });
    expect((await from('198.51.100.1')).status).toBe(200);
    expect((await from('198.51.100.1')).status).toBe(429);
    // same TCP peer, another client behind the ingress
    expect((await from('spoofed, 198.51.100.2')).status).toBe(200);
    const audit = p.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l) as { clientIP: string });
    expect(audit.map((a) => a.clientIP)).toEqual(['198.51.100.1', '198.51.100.2']);
  });

  it('does not limit the registry API itself', async () => {
    const p = await startProxy({ config: { limits: { tokenPerClient: { rate: 1, burst: 1 } } } });
    started.push(p);
    for (let i = 0; i < 20; i++) expect((await fetch(`${p.url}/v2/`)).status).toBe(401);
  });
});
