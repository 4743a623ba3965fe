import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../../src/http/rate-limit.js';
import { buildConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('rate limiter', () => {
  it('lets a client burst, then refuses with the seconds until the next token', () => {
    const c = clock();
    const l = createRateLimiter({ rate: 2, burst: 3 }, { rate: 0, burst: 0 }, { now: c.now });
    for (let i = 0; i < 3; i++) expect(l.admit('10.0.0.1')).toEqual({ ok: true });
    expect(l.admit('10.0.0.1')).toEqual({ ok: false, retryAfterSeconds: 1, scope: 'client' });
    // another client has its own bucket
    expect(l.admit('10.0.0.2')).toEqual({ ok: true });
    c.advance(500); // one token back at 2/s
    expect(l.admit('10.0.0.1')).toEqual({ ok: true });
    expect(l.admit('10.0.0.1').ok).toBe(false);
  });

  it('rounds Retry-After up for slow rates', () => {
    const c = clock();
    const l = createRateLimiter({ rate: 0.1, burst: 1 }, { rate: 0, burst: 0 }, { now: c.now });
    expect(l.admit('a').ok).toBe(true);
    expect(l.admit('a')).toEqual({ ok: false, retryAfterSeconds: 10, scope: 'client' });
    c.advance(4000);
    expect(l.admit('a')).toEqual({ ok: false, retryAfterSeconds: 6, scope: 'client' });
  });

  it('applies the global budget across clients and does not charge a client refused globally', () => {
    const c = clock();
    const l = createRateLimiter({ rate: 10, burst: 2 }, { rate: 1, burst: 2 }, { now: c.now });
    expect(l.admit('a').ok).toBe(true);
    expect(l.admit('b').ok).toBe(true);
    expect(l.admit('c')).toEqual({ ok: false, retryAfterSeconds: 1, scope: 'global' });
    c.advance(1000);
    expect(l.admit('c').ok).toBe(true);
    // 'c' was refused once globally but still has one of its two tokens after this success
    c.advance(1000);
    expect(l.admit('c').ok).toBe(true);
  });

  it('is disabled by rate 0', () => {
    const l = createRateLimiter({ rate: 0, burst: 0 }, { rate: 0, burst: 0 });
    for (let i = 0; i < 10_000; i++) expect(l.admit('a').ok).toBe(true);
    expect(l.size()).toBe(0);
  });

  it('keeps a bounded number of client buckets under an address scan', () => {
    const c = clock();
    const l = createRateLimiter({ rate: 1, burst: 1 }, { rate: 0, burst: 0 }, { now: c.now, maxClients: 100 });
    for (let i = 0; i < 5000; i++) l.admit(`10.0.${i >> 8}.${i & 255}`);
    expect(l.size()).toBeLessThanOrEqual(100);
    // the most recent client is still limited (its bucket was not evicted)
    expect(l.admit(`10.0.${4999 >> 8}.${4999 & 255}`).ok).toBe(false);
  });
});

describe('limits config', () => {
  it('has defaults, takes overrides and derives a burst', () => {
    const d = buildConfig({});
    expect(d.limits).toEqual({
      tokenPerClient: { rate: 20, burst: 60 },
      tokenGlobal: { rate: 2000, burst: 4000 },
      maxHeaderBytes: 16384,
      maxHeaderCount: 100,
      tokenBodyTimeout: 10_000,
      idleTimeout: 300_000,
      maxConnections: 2048,
      maxConnectionsPerClient: 256,
    });
    expect(d.shutdownGrace).toBe(25_000);
    const c = buildConfig({ limits: { tokenPerClient: { rate: 0 }, tokenGlobal: { rate: 5000 }, maxHeaderBytes: 8192 }, shutdownGrace: '5s' });
    expect(c.limits.tokenPerClient.rate).toBe(0);
    expect(c.limits.tokenGlobal).toEqual({ rate: 5000, burst: 10000 });
    expect(c.limits.maxHeaderBytes).toBe(8192);
    expect(c.shutdownGrace).toBe(5000);
  });

  it('names the key of a bad limit', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ limits: { tokenPerClient: { rate: -1 } } }, /limits\.tokenPerClient\.rate/],
      [{ limits: { tokenPerClient: 5 } }, /limits\.tokenPerClient/],
      [{ limits: { tokenGlobal: { rate: 1, burst: 0 } } }, /limits\.tokenGlobal\.burst/],
      [{ limits: { maxHeaderBytes: 10 } }, /limits\.maxHeaderBytes/],
      [{ limits: { perIp: 1 } }, /limits\.perIp/],
      [{ shutdownGrace: 'soon' }, /shutdownGrace/],
      [{ issuers: [{ name: 'x', issuer: 'https://x.test', timeout: 'never' }] }, /issuers\[0\]\.timeout/],
    ];
    for (const [raw, re] of bad) {
      let err: unknown;
      try {
        buildConfig(raw, {}, 'c.yaml');
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(raw)).toBeInstanceOf(ConfigError);
      expect(String((err as Error).message)).toMatch(re);
    }
  });
});
