import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../fixtures/redis.js';
import { eventually, scrape, seriesValue, servingWorkers } from '../../support/cluster.js';
import { identity, limitedProxy, tokenRequest } from './support.js';

/**
 * Issue 23 with real parts: limits.rules counted in a real redis-server shared by two proxy
 * processes of two workers each, in the cluster primary of `workers: 4`, and what happens when Redis dies.
 */

const perIdentity = (count: number) => [
  { name: 'per-identity', match: 'request.kind == "token"', rate: { per: '1m', count } },
];

async function statuses(urls: string[], idToken: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await tokenRequest(urls[i % urls.length]!, idToken)).status);
  return out;
}

const count = (xs: number[], status: number) => xs.filter((x) => x === status).length;

describe('limits on a shared Redis', () => {
  let redis: RedisServer;
  const proxies: Awaited<ReturnType<typeof limitedProxy>>[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < 2; i++)
      proxies.push(await limitedProxy({ rules: perIdentity(10), store: { url: redis.url } }, { workers: 2 }));
    for (const p of proxies) await servingWorkers(p.url, 2);
  });
  afterAll(async () => {
    for (const p of proxies) p.kill();
    await redis?.stop();
  });

  it('lets exactly 10 of 30 requests of identity A through, over both processes and all four workers; B is unaffected', async () => {
    const a = await statuses(
      proxies.map((p) => p.url),
      await identity('A'),
      30,
    );
    expect(count(a, 200)).toBe(10);
    expect(count(a, 429)).toBe(20);
    expect(a.slice(0, 10)).toEqual(Array(10).fill(200));
    const first = await tokenRequest(proxies[1]!.url, await identity('B2'));
    expect(first.headers['ratelimit-limit']).toBe('10;w=60');
    expect(first.headers['ratelimit-remaining']).toBe('9;w=60');
    const b = await statuses(
      proxies.map((p) => p.url),
      await identity('B'),
      4,
    );
    expect(b).toEqual([200, 200, 200, 200]);
  });

  it('says which limit, for whom and when it resets, with Retry-After and RateLimit headers', async () => {
    const answer = await tokenRequest(proxies[0]!.url, await identity('A'));
    expect(answer.status).toBe(429);
    const body = JSON.parse(answer.body) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('TOOMANYREQUESTS');
    expect(body.errors[0]!.message).toMatch(
      /^rate limit "per-identity" of 10 per 1m \(counted per identity\) reached: resets in \d+s \(\d{4}-\d\d-\d\dT[\d:]+Z\)$/,
    );
    const text = await scrape(proxies[0]!.url);
    expect(
      seriesValue(
        text,
        'rap_limit_decisions_total{rule="per-identity",place="token",key_class="identity",result="limited"}',
      ),
    ).toBeGreaterThan(0);
    expect(text).not.toContain('ci:A');
  });
});

describe('limits on the cluster store', () => {
  it('workers: 4 honours the configured limit, not 4 times it', async () => {
    const proxy = await limitedProxy({ rules: perIdentity(10) }, { workers: 4 });
    try {
      await servingWorkers(proxy.url, 4);
      const a = await statuses([proxy.url], await identity('C'), 30);
      expect(count(a, 200)).toBe(10);
      expect(count(a, 429)).toBe(20);
    } finally {
      proxy.kill();
    }
  });
});

describe('Redis killed mid-test', () => {
  let redis: RedisServer;
  let open: Awaited<ReturnType<typeof limitedProxy>>;
  let closed: Awaited<ReturnType<typeof limitedProxy>>;
  beforeAll(async () => {
    redis = await startRedis();
    const store = (failMode: string) => ({ url: redis.url, failMode, timeout: '200ms' });
    open = await limitedProxy({ rules: perIdentity(3), store: store('open') });
    closed = await limitedProxy({ rules: perIdentity(3), store: store('closed') });
  });
  afterAll(async () => {
    open?.kill();
    closed?.kill();
    await redis?.stop();
  });

  it('fail-open keeps limiting per process and says so; fail-closed answers 503; Redis back: shared counting resumes', async () => {
    const d = await identity('D');
    expect(await statuses([open.url, closed.url], d, 4)).toEqual([200, 200, 200, 429]);
    await redis.kill();
    expect(
      await eventually(async () => (await (await fetch(`${open.url}/readyz`)).json()).limits?.state === 'unreachable'),
    ).toBe(true);
    const readyOpen = await (await fetch(`${open.url}/readyz`)).json();
    expect(readyOpen).toMatchObject({
      status: 'not ready',
      limits: { store: 'redis', state: 'unreachable', failMode: 'open' },
    });
    // Per process meanwhile: E gets the limit from this process alone.
    const e = await identity('E');
    expect(await statuses([open.url], e, 4)).toEqual([200, 200, 200, 429]);
    expect(open.output()).toContain('rate-limit store unreachable: limiting per process meanwhile');
    const metrics = await scrape(open.url);
    expect(seriesValue(metrics, 'rap_limit_store_up{store="redis"}')).toBe(0);
    expect(seriesValue(metrics, 'rap_limit_store_fallbacks_total{store="redis",fail_mode="open"}')).toBeGreaterThan(0);
    const refused = await tokenRequest(closed.url, await identity('F'));
    expect(refused.status).toBe(503);
    expect(refused.body).toContain('rate-limit store unavailable');
    const readyClosed = await fetch(`${closed.url}/readyz`);
    expect(readyClosed.status).toBe(503);
    expect(JSON.stringify(await readyClosed.json())).toContain(
      'rate-limit store redis unreachable (limits.store.failMode: closed)',
    );

    await redis.restart();
    for (const p of [open, closed])
      expect(
        await eventually(async () => (await (await fetch(`${p.url}/readyz`)).json()).limits?.state === 'ready'),
      ).toBe(true);
    expect(open.output()).toContain('rate-limit store reachable: counting shared again');
    expect(await statuses([open.url, closed.url], await identity('G'), 4)).toEqual([200, 200, 200, 429]);
  });
});

describe('Redis over TLS with a password', () => {
  it('counts in a rediss:// server whose CA is caFile, authenticating with passwordFile', async () => {
    const redis = await startRedis({ tls: true, password: 's3cret-for-the-test' });
    const store = {
      url: redis.url,
      caFile: redis.caFile,
      passwordFile: redis.passwordFile,
      failMode: 'closed',
    };
    const proxy = await limitedProxy({ rules: perIdentity(2), store });
    try {
      expect(
        await eventually(async () => (await (await fetch(`${proxy.url}/readyz`)).json()).limits?.state === 'ready'),
      ).toBe(true);
      // fail-closed: a 200 here means Redis answered (a store failure would be a 503)
      expect(await statuses([proxy.url], await identity('H'), 3)).toEqual([200, 200, 429]);
    } finally {
      proxy.kill();
      await redis.stop();
    }
  });
});
