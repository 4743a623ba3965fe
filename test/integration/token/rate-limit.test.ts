import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { startProxy, TEST_ISSUER, type TestProxy } from '../../helpers/server.js';
import { TestIssuer } from '../../support/issuer.js';

/**
 * /token rate limits, answered with 429, Retry-After and an OCI body: attempts that are
 * unauthenticated, anonymous or fail are limited per client address; verified callers per identity
 * (issuer + subject), so callers behind one address (CI jobs behind a NAT) do not share a budget.
 */
const started: TestProxy[] = [];
afterAll(async () => {
  for (const p of started) await p.stop();
});

/** Signs with a key the proxy does not trust, under the `ci` issuer's iss and kid: a real bad_signature. */
let forger: TestIssuer;
beforeAll(async () => {
  forger = await TestIssuer.create({
    issuer: TEST_ISSUER,
    audience: 'registry.test',
    kid: 'ci-1',
    claims: { sub: 'job-42', team: 'team-a' },
  });
});

interface Answer {
  status: number;
  retryAfter?: string;
  body: { errors?: { code: string; message: string }[]; error?: string; token?: string };
}

/** GET /token from `localAddress` with the identity token as the Basic password; none: no credentials. */
function tokenFrom(p: TestProxy, localAddress: string, identity: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${p.url}/token?service=registry.test&scope=repository:team-a/app:pull`, {
      localAddress,
      headers:
        identity === undefined ? {} : { authorization: `Basic ${Buffer.from(`x:${identity}`).toString('base64')}` },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          retryAfter: res.headers['retry-after'] as string | undefined,
          body: JSON.parse(text),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Statuses of `count` requests from one address, `lanes` at a time (each lane one after another). */
async function statuses(count: number, lanes: number, send: (i: number) => Promise<Answer>): Promise<number[]> {
  const out: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count) out.push((await send(next++)).status);
    }),
  );
  return out;
}

const count = (xs: number[], x: number) => xs.filter((s) => s === x).length;
type AuditLine = {
  audit?: string;
  status?: number;
  bucket?: string;
  subject?: string;
  clientIP?: string;
  reason?: string;
};
const auditLines = (p: TestProxy) =>
  p.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l) as AuditLine);

describe('/token rate limits', () => {
  it('limits failed attempts per client IP, with 429 and Retry-After, before verifying anything', async () => {
    const p = await startProxy({
      config: { limits: { tokenPerClient: { rate: 0.5, burst: 3 }, tokenGlobal: { rate: 0 } } },
    });
    started.push(p);
    const bad = await forger.mint();
    for (let i = 0; i < 3; i++) expect((await tokenFrom(p, '127.0.0.1', bad)).status).toBe(401);
    const auditBefore = auditLines(p).length;
    const limited = await tokenFrom(p, '127.0.0.1', bad);
    expect(limited.status).toBe(429);
    expect(limited.retryAfter).toBe('2');
    expect(limited.body.errors?.[0]?.code).toBe('TOOMANYREQUESTS');
    expect(limited.body.errors?.[0]?.message).toMatch(
      /too many unauthenticated or failed token requests from 127\.0\.0\.1: retry in 2s/,
    );
    expect(limited.body.error).toBe('temporarily_unavailable');
    expect(limited.body.token).toBeUndefined();
    // refused before the identity token was looked at: one audit line naming the bucket, not the token
    const audit = p.logs.filter((l) => l.includes('"audit":"token"')).slice(auditBefore);
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!)).toMatchObject({
      status: 429,
      reason: 'rate_limited',
      bucket: 'address',
      clientIP: '127.0.0.1',
    });
    expect(audit[0]).not.toContain(bad);
    expect(audit[0]).not.toContain(bad.split('.')[2]);
    // the rest of the flood is counted, logged at debug, not audited again
    expect((await tokenFrom(p, '127.0.0.1', bad)).status).toBe(429);
    expect(auditLines(p)).toHaveLength(auditBefore + 1);
    // another client is not affected
    expect((await tokenFrom(p, '127.0.0.2', bad)).status).toBe(401);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    expect(metrics).toMatch(/rap_rate_limited_total\{scope="address"\} 2/);
  });

  it('applies the global budget across all clients', async () => {
    const p = await startProxy({
      config: { limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 1, burst: 2 } } },
    });
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
    const p = await startProxy({
      config: {
        trustedProxies: ['127.0.0.0/8'],
        limits: { tokenPerClient: { rate: 0.5, burst: 1 }, tokenGlobal: { rate: 0 } },
      },
    });
    started.push(p);
    const bad = await forger.mint();
    const from = (xff: string) =>
      fetch(`${p.url}/token?service=registry.test&scope=repository:team-a/app:pull`, {
        headers: { authorization: `Basic ${Buffer.from(`x:${bad}`).toString('base64')}`, 'x-forwarded-for': xff },
      });
    expect((await from('198.51.100.1')).status).toBe(401);
    expect((await from('198.51.100.1')).status).toBe(429);
    // same TCP peer, another client behind the ingress
    expect((await from('spoofed, 198.51.100.2')).status).toBe(401);
    expect(auditLines(p).map((a) => [a.clientIP, a.status])).toEqual([
      ['198.51.100.1', 401],
      ['198.51.100.1', 429],
      ['198.51.100.2', 401],
    ]);
  });

  it('does not limit the registry API itself', async () => {
    const p = await startProxy({ config: { limits: { tokenPerClient: { rate: 1, burst: 1 } } } });
    started.push(p);
    for (let i = 0; i < 20; i++) expect((await fetch(`${p.url}/v2/`)).status).toBe(401);
  });

  it('gives each identity behind one address its own budget: a noisy neighbour is throttled alone', async () => {
    // an address budget far below what the neighbours ask for together: verified callers are not charged to it
    const p = await startProxy({
      config: {
        limits: {
          tokenPerClient: { rate: 0.01, burst: 3 },
          tokenPerIdentity: { rate: 0.01, burst: 5 },
          tokenGlobal: { rate: 0 },
        },
      },
    });
    started.push(p);
    const neighbours = await Promise.all(Array.from({ length: 12 }, (_, i) => p.mintIdentity({ sub: `job-${i}` })));
    const noisy = await p.mintIdentity({ sub: 'noisy' });
    for (const id of neighbours) expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    const noise = await statuses(40, 1, () => tokenFrom(p, '127.0.0.1', noisy));
    expect(noise.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(count(noise, 429)).toBe(35);
    const limited = await tokenFrom(p, '127.0.0.1', noisy);
    expect(limited.body.errors?.[0]?.message).toMatch(
      /too many token requests from this identity \(issuer "ci"\): retry in \d+s/,
    );
    // the neighbours, old and new, still get their tokens from the same address
    for (const id of neighbours) expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    expect((await tokenFrom(p, '127.0.0.1', await p.mintIdentity({ sub: 'job-new' }))).status).toBe(200);
    const throttled = auditLines(p).filter((a) => a.status === 429);
    expect(throttled).toEqual([
      expect.objectContaining({ bucket: 'identity', subject: 'noisy', clientIP: '127.0.0.1', reason: 'rate_limited' }),
    ]);
    expect(p.logs.join('\n')).not.toContain(noisy);
  });

  it('never throttles one identity fetching a token per request at the conformance suite pace (defaults)', async () => {
    const p = await startProxy();
    started.push(p);
    const id = await p.mintIdentity();
    // ~50/s for 5 s, as fast as the proxy answers: within the default per-identity burst whatever the speed
    const all = await statuses(250, 5, () => tokenFrom(p, '127.0.0.1', id));
    expect(all).toHaveLength(250);
    expect(count(all, 200)).toBe(250);
  });

  it('throttles a flood of invalid tokens from one address without charging a verified identity there', async () => {
    const p = await startProxy({
      config: { limits: { tokenPerClient: { rate: 0.01, burst: 60 }, tokenPerIdentity: { rate: 0.01, burst: 4 } } },
    });
    started.push(p);
    const id = await p.mintIdentity();
    expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    const forged = await Promise.all(Array.from({ length: 50 }, (_, i) => forger.mint({ jti: `f-${i}` })));
    const flood = await statuses(1000, 8, (i) => tokenFrom(p, '127.0.0.1', forged[i % forged.length]));
    expect(flood).toHaveLength(1000);
    // the address budget (burst 60; refilling one every 100 s) verifies about 60 and refuses the rest
    expect(count(flood, 401)).toBeGreaterThanOrEqual(60);
    expect(count(flood, 401)).toBeLessThanOrEqual(62);
    expect(count(flood, 429)).toBe(1000 - count(flood, 401));
    // the identity from the same address still has the rest of its own budget (4), then only its own limit applies
    for (let i = 0; i < 3; i++) expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
    const own = await tokenFrom(p, '127.0.0.1', id);
    expect(own.status).toBe(429);
    expect(own.body.errors?.[0]?.message).toMatch(/from this identity/);
    expect(
      auditLines(p)
        .filter((a) => a.status === 429)
        .map((a) => a.bucket),
    ).toEqual(['address', 'identity']);
  });

  it('limits unauthenticated requests per address, anonymous or without credentials, but not a verified caller there', async () => {
    for (const anonymous of [true, false]) {
      const p = await startProxy({
        config: { anonymous, limits: { tokenPerClient: { rate: 0.01, burst: 2 }, tokenGlobal: { rate: 0 } } },
      });
      started.push(p);
      const id = await p.mintIdentity();
      expect((await tokenFrom(p, '127.0.0.1', id)).status).toBe(200);
      const none = await statuses(10, 1, () => tokenFrom(p, '127.0.0.1', undefined));
      expect(none, `anonymous: ${anonymous}`).toEqual([...Array(2).fill(anonymous ? 200 : 401), ...Array(8).fill(429)]);
      const limited = await tokenFrom(p, '127.0.0.1', undefined);
      expect(limited.body.errors?.[0]?.message).toMatch(
        /too many unauthenticated or failed token requests from 127\.0\.0\.1/,
      );
      // another address, and the verified caller on this one, are unaffected
      expect((await tokenFrom(p, '127.0.0.2', undefined)).status).toBe(anonymous ? 200 : 401);
      for (let i = 0; i < 5; i++)
        expect((await tokenFrom(p, '127.0.0.1', id)).status, `anonymous: ${anonymous}`).toBe(200);
    }
  });
});
