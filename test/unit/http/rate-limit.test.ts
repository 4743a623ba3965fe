import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../../src/http/rate-limit.js';
import { buildConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';
import type { RateLimit } from '../../../src/config/types.js';
import { DEFAULT_MANIFEST_MEDIA_TYPES } from '../../../src/config/schema.js';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const OFF = { rate: 0, burst: 0 };
/** A limiter with only the buckets given (the others off), on a test clock. */
function limiter(
  limits: { perAddress?: RateLimit; perIdentity?: RateLimit; global?: RateLimit },
  now: () => number,
  maxKeys?: number,
) {
  return createRateLimiter({ perAddress: OFF, perIdentity: OFF, global: OFF, ...limits }, { now, maxKeys });
}
const refused = (bucket: string, retryAfterSeconds: number, repeat: boolean) => ({
  ok: false,
  retryAfterSeconds,
  bucket,
  repeat,
});

describe('rate limiter', () => {
  it('lets an address burst, then refuses with the seconds until the next token', () => {
    const c = clock();
    const l = limiter({ perAddress: { rate: 2, burst: 3 } }, c.now);
    for (let i = 0; i < 3; i++) expect(l.admitAddress('10.0.0.1')).toEqual({ ok: true });
    expect(l.admitAddress('10.0.0.1')).toEqual(refused('address', 1, false));
    // the rest of the flood is marked as a repeat (audited once)
    expect(l.admitAddress('10.0.0.1')).toEqual(refused('address', 1, true));
    // another address has its own bucket
    expect(l.admitAddress('10.0.0.2')).toEqual({ ok: true });
    c.advance(500); // one token back at 2/s
    expect(l.admitAddress('10.0.0.1')).toEqual({ ok: true });
    // refusing again after an admission is a new episode
    expect(l.admitAddress('10.0.0.1')).toEqual(refused('address', 1, false));
  });

  it('rounds Retry-After up for slow rates', () => {
    const c = clock();
    const l = limiter({ perAddress: { rate: 0.1, burst: 1 } }, c.now);
    expect(l.admitAddress('a').ok).toBe(true);
    expect(l.admitAddress('a')).toEqual(refused('address', 10, false));
    c.advance(4000);
    expect(l.admitAddress('a')).toEqual(refused('address', 6, true));
  });

  it('moves a verified attempt from its address to its identity', () => {
    const c = clock();
    const l = limiter({ perAddress: { rate: 1, burst: 2 }, perIdentity: { rate: 1, burst: 3 } }, c.now);
    // ten verified callers behind one address: each reserves the address, then gives it back
    for (let i = 0; i < 10; i++) {
      expect(l.admitAddress('nat').ok).toBe(true);
      expect(l.settleVerified('nat', `job-${i}`)).toEqual({ ok: true });
    }
    // the address budget is untouched by them
    expect(l.admitAddress('nat').ok).toBe(true);
    expect(l.admitAddress('nat').ok).toBe(true);
    expect(l.admitAddress('nat')).toEqual(refused('address', 1, false));
    // a caller whose token is already verified is admitted by its identity alone, even from an exhausted address
    expect(l.admitIdentity('job-0')).toEqual({ ok: true });
    expect(l.admitIdentity('job-0')).toEqual({ ok: true });
    expect(l.admitIdentity('job-0')).toEqual(refused('identity', 1, false));
    expect(l.admitIdentity('job-1')).toEqual({ ok: true });
  });

  it('gives the address its token back even when the identity is over its own budget', () => {
    const c = clock();
    const l = limiter({ perAddress: { rate: 1, burst: 1 }, perIdentity: { rate: 1, burst: 1 } }, c.now);
    expect(l.admitAddress('a').ok).toBe(true);
    expect(l.settleVerified('a', 'noisy')).toEqual({ ok: true });
    expect(l.admitAddress('a').ok).toBe(true);
    expect(l.settleVerified('a', 'noisy')).toEqual(refused('identity', 1, false));
    // the noisy identity cost its address nothing
    expect(l.admitAddress('a').ok).toBe(true);
  });

  it('applies the global budget across addresses and identities, and charges no one refused', () => {
    const c = clock();
    const l = limiter(
      { perAddress: { rate: 10, burst: 2 }, perIdentity: { rate: 10, burst: 2 }, global: { rate: 1, burst: 2 } },
      c.now,
    );
    expect(l.admitAddress('a').ok).toBe(true);
    expect(l.admitIdentity('x').ok).toBe(true);
    expect(l.admitAddress('c')).toEqual(refused('global', 1, false));
    expect(l.admitIdentity('y')).toEqual(refused('global', 1, true));
    // settling a verified attempt does not pay the global budget twice
    expect(l.settleVerified('a', 'x')).toEqual({ ok: true });
    c.advance(1000);
    expect(l.admitAddress('c').ok).toBe(true);
    // 'c' was refused once globally but still has one of its two tokens after this success
    c.advance(1000);
    expect(l.admitAddress('c').ok).toBe(true);
  });

  it('is disabled by rate 0', () => {
    const l = limiter({}, () => 0);
    for (let i = 0; i < 1000; i++) {
      expect(l.admitAddress('a').ok).toBe(true);
      expect(l.settleVerified('a', 'x').ok).toBe(true);
      expect(l.admitIdentity('x').ok).toBe(true);
    }
    expect(l.size()).toEqual({ addresses: 0, identities: 0 });
  });

  it('keeps a bounded number of buckets under an address scan or an identity flood', () => {
    const c = clock();
    const l = limiter({ perAddress: { rate: 1, burst: 1 }, perIdentity: { rate: 1, burst: 1 } }, c.now, 100);
    for (let i = 0; i < 5000; i++) {
      l.admitAddress(`10.0.${i >> 8}.${i & 255}`);
      l.admitIdentity(`id-${i}`);
    }
    expect(l.size()).toEqual({ addresses: 100, identities: 100 });
    // the most recent ones are still limited (their buckets were not evicted)
    expect(l.admitAddress(`10.0.${4999 >> 8}.${4999 & 255}`).ok).toBe(false);
    expect(l.admitIdentity('id-4999').ok).toBe(false);
  });
});

describe('limits config', () => {
  it('has defaults, takes overrides and derives a burst', () => {
    const d = buildConfig({});
    expect(d.limits).toEqual({
      tokenPerClient: { rate: 20, burst: 60 },
      tokenPerIdentity: { rate: 100, burst: 300 },
      tokenGlobal: { rate: 2000, burst: 4000 },
      maxHeaderBytes: 16384,
      maxHeaderCount: 100,
      tokenBodyTimeout: 10_000,
      idleTimeout: 300_000,
      maxConnections: 2048,
      maxConnectionsPerClient: 256,
      manifestMaxBytes: 4 * 1024 * 1024,
      manifestMediaTypes: DEFAULT_MANIFEST_MEDIA_TYPES,
      tagLookupTTL: 5000,
      tagLockWait: 10_000,
      rules: [],
      store: { failMode: 'open', timeout: 500 },
    });
    expect(d.shutdownGrace).toBe(25_000);
    const c = buildConfig({
      limits: {
        tokenPerClient: { rate: 0 },
        tokenPerIdentity: { rate: 400 },
        tokenGlobal: { rate: 5000 },
        maxHeaderBytes: 8192,
      },
      shutdownGrace: '5s',
    });
    expect(c.limits.tokenPerClient.rate).toBe(0);
    expect(c.limits.tokenPerIdentity).toEqual({ rate: 400, burst: 800 });
    expect(c.limits.tokenGlobal).toEqual({ rate: 5000, burst: 10000 });
    expect(c.limits.maxHeaderBytes).toBe(8192);
    expect(c.shutdownGrace).toBe(5000);
  });

  it('names the key of a bad limit', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ limits: { tokenPerClient: { rate: -1 } } }, /limits\.tokenPerClient\.rate/],
      [{ limits: { tokenPerClient: 5 } }, /limits\.tokenPerClient/],
      [{ limits: { tokenGlobal: { rate: 1, burst: 0 } } }, /limits\.tokenGlobal\.burst/],
      [{ limits: { tokenPerIdentity: { rate: 'many' } } }, /limits\.tokenPerIdentity\.rate/],
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
