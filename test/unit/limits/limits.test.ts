import { afterEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { buildConfig } from '../../../src/config/load.js';
import type { LimitRule } from '../../../src/config/types.js';
import { refusalOf, headroomHeaders } from '../../../src/limits/answer.js';
import { createLimiter } from '../../../src/limits/limiter.js';
import { counterPlans } from '../../../src/limits/rules.js';
import { storeKind } from '../../../src/limits/store.js';
import type { Limiter, LimitSubject } from '../../../src/limits/types.js';
import { compileLimitKey, compileLimitMatch } from '../../../src/policy/limit-key.js';
import { configProblem } from '../../support/config.js';

const logger = pino({ level: 'silent' });

function rulesOf(rules: unknown[], extra: Record<string, unknown> = {}) {
  return buildConfig({ limits: { rules, ...extra } }, {}, 'rap.yaml');
}

/** A memory limiter over `rules` (as a config file has them), key and match expressions compiled. */
async function memoryLimiter(rules: unknown[]): Promise<Limiter> {
  const config = rulesOf(rules);
  const keys = new Map();
  const matches = new Map();
  for (const r of config.limits.rules) {
    if (r.key) keys.set(r.name, compileLimitKey(r.name, r.key));
    if (r.match) matches.set(r.name, compileLimitMatch(r.name, r.match));
  }
  return createLimiter({
    rules: config.limits.rules,
    store: config.limits.store,
    kind: 'memory',
    keys,
    matches,
    logger,
  });
}

function subject(
  subjectName: string,
  { namespace = 'team-a', upstream = 'hub', kind = 'manifest', method = 'GET' } = {},
): LimitSubject {
  return {
    identity: {
      issuerName: 'ci',
      issuer: 'https://ci',
      subject: subjectName,
      namespace,
      claims: { repository_owner: 'acme' },
    },
    request: {
      type: 'repository',
      repository: 'hub/library/alpine',
      actions: ['pull'],
      service: 'svc',
      clientIP: '10.0.0.1',
      upstream,
      kind,
      method,
      reference: 'latest',
    },
  };
}

const HUB = {
  name: 'hub-pulls-per-namespace',
  key: 'identity.namespace',
  match: 'request.upstream == "hub" && request.kind == "manifest"',
  rate: { per: '1h', count: 60, burst: 10 },
};

describe('limits config (CONTRACT §8)', () => {
  it("reads the contract's example, with defaults", () => {
    const config = rulesOf([HUB], { store: { type: 'redis', url: 'redis://redis:6379', failMode: 'open' } });
    expect(config.limits.rules[0]).toEqual({ ...HUB, rate: { per: 3_600_000, count: 60, burst: 10 } });
    expect(config.limits.store).toEqual({ type: 'redis', url: 'redis://redis:6379', failMode: 'open', timeout: 500 });
    expect(storeKind(config)).toBe('redis');
    const plain = rulesOf([{ name: 'per-id', rate: { per: '1m', count: 10 } }]);
    expect(plain.limits.store).toEqual({ failMode: 'open', timeout: 500 });
    expect(storeKind(plain)).toBe('memory');
    expect(storeKind({ ...plain, workers: 4 })).toBe('cluster');
    expect(storeKind(rulesOf([], { store: { url: 'rediss://r:6380', failMode: 'closed' } }))).toBe('redis');
  });

  it('words its errors for the user', () => {
    const rule = (r: Record<string, unknown>) => configProblem({ limits: { rules: [{ name: 'x', ...r }] } });
    expect(rule({})).toBe(
      'limits.rules[0].rate: must be a mapping {per, count, burst} (e.g. {per: 1h, count: 60, burst: 10})',
    );
    expect(rule({ rate: { per: '1h', count: 5, burst: 6 } })).toBe(
      'limits.rules[0].rate.burst: must be at most count (5): burst is how many of count may come at once',
    );
    expect(rule({ rate: { per: '1h' } })).toBe(
      'limits.rules[0].rate.count: must be an integer between 1 and 1000000000',
    );
    expect(rule({ rate: { per: '500ms', count: 1 } })).toBe(
      'limits.rules[0].rate.per: must be a duration between 1s and 31d',
    );
    expect(rule({ rate: { per: '1h', count: 1, window: '1h' } })).toBe(
      'limits.rules[0].rate.window: unknown key (known: per, count, burst)',
    );
    expect(
      configProblem({
        limits: {
          rules: [
            { name: 'x', rate: { per: '1s', count: 1 } },
            { name: 'x', rate: { per: '1s', count: 2 } },
          ],
        },
      }),
    ).toBe('limits.rules: two rules are named "x": names must be unique');
    expect(configProblem({ limits: { store: { type: 'redis' } } })).toBe(
      'limits.store.url: is required with type: redis',
    );
    expect(configProblem({ limits: { store: { type: 'memory', url: 'redis://r:6379' } } })).toBe(
      'limits.store.url: is the Redis server of type: redis, not of type: memory',
    );
    expect(configProblem({ limits: { store: { url: 'rediss://:secret@r:6380' } } })).toBe(
      'limits.store.url: must not hold the password: put it in a file and name it in passwordFile',
    );
    expect(configProblem({ limits: { store: { url: 'http://r' } } })).toContain(
      'must start with redis:// or rediss://',
    );
    expect(configProblem({ limits: { store: { failMode: 'fail-open' } } })).toBe(
      'limits.store.failMode: must be open or closed',
    );
  });

  it('refuses the keys of the first shape, naming what replaced them', () => {
    const rate = { per: '1s', count: 1 };
    const rule = (r: Record<string, unknown>) => configProblem({ limits: { rules: [{ name: 'x', rate, ...r }] } });
    expect(rule({ rate: 5 })).toBe(
      'limits.rules[0].rate: must be a mapping {per, count, burst} (e.g. {per: 1h, count: 60, burst: 10})',
    );
    expect(rule({ at: ['token'] })).toBe(
      'limits.rules[0].at: no longer a key: use match (e.g. match: request.kind == "token" for /token only, request.kind != "token" for /v2/ only)',
    );
    expect(rule({ upstreams: ['hub'] })).toBe(
      'limits.rules[0].upstreams: no longer a key: use match: request.upstream in ["hub"]',
    );
    expect(rule({ quota: { limit: 1, window: '1h' } })).toBe(
      'limits.rules[0].quota: no longer a key: use rate: {per: 1h, count: 60} (a quota is a rate without burst)',
    );
    expect(rule({ burst: 3 })).toBe(
      'limits.rules[0].burst: no longer a key: write it inside rate: {per, count, burst}',
    );
    expect(rule({ costs: { manifest: 1 } })).toContain(
      'limits.rules[0].costs: no longer a key: use match over request.kind',
    );
    expect(configProblem({ limits: { store: { redis: { url: 'redis://r:6379' } } } })).toBe(
      'limits.store.redis: no longer a key: write url (and passwordFile, caFile) directly under limits.store',
    );
    expect(configProblem({ limits: { store: { failure: 'fail-open' } } })).toBe(
      'limits.store.failure: no longer a key: use failMode: open | closed',
    );
    // the hidden keys are not offered as known ones
    expect(configProblem({ limits: { store: { nope: 1 } } })).toBe(
      'limits.store.nope: unknown key (known: type, url, passwordFile, caFile, failMode, timeout)',
    );
  });

  it('type-checks key and match at start-up against what a limit can see', () => {
    expect(() => compileLimitKey('x', 'identity.namespce')).toThrow(/limits.rules "x": key: invalid CEL/);
    expect(() => compileLimitKey('x', '1 + 1')).toThrow(/must evaluate to a string, not int/);
    expect(() => compileLimitMatch('x', 'request.upstream')).toThrow(
      /limits.rules "x": match: must evaluate to a bool/,
    );
    // upstream facts and signatures are request-time rule inputs a limit never has
    expect(() => compileLimitMatch('x', 'upstream.tagExists')).toThrow(/match: invalid CEL/);
    expect(() => compileLimitMatch('x', 'request.digest == ""')).toThrow(/match: invalid CEL/);
    expect(compileLimitKey('x', 'claims.repository_owner')(subject('A'))).toBe('acme');
    expect(compileLimitMatch('x', HUB.match)(subject('A'))).toBe(true);
    expect(compileLimitMatch('x', HUB.match)(subject('A', { kind: 'blob' }))).toBe(false);
  });
});

describe('rate arithmetic: {per, count, burst} as rate-limiter-flexible counters', () => {
  const plans = (rate: LimitRule['rate']) => counterPlans({ name: 'r', rate } as LimitRule);

  it('is a window of count per per, and a pace of burst per per × burst / count', () => {
    expect(plans({ per: 3_600_000, count: 60, burst: 10 })).toEqual([
      {
        spec: { prefix: 'rap:r:w', points: 60, durationS: 3600 },
        limit: 60,
        window: true,
        what: '60 per 1h, bursts of 10',
      },
      {
        spec: { prefix: 'rap:r:b', points: 10, durationS: 600 },
        limit: 10,
        window: false,
        what: '60 per 1h, at most 10 per 10m',
      },
    ]);
    // no burst, or burst == count: the window alone
    expect(plans({ per: 60_000, count: 10 })).toEqual([
      { spec: { prefix: 'rap:r:w', points: 10, durationS: 60 }, limit: 10, window: true, what: '10 per 1m' },
    ]);
    expect(plans({ per: 60_000, count: 10, burst: 10 })).toHaveLength(1);
    // a pace slice under a second is one second holding a second's worth of the rate
    expect(plans({ per: 1000, count: 100, burst: 10 })[1]!.spec).toEqual({
      prefix: 'rap:r:b',
      points: 100,
      durationS: 1,
    });
  });
});

describe('"60 per hour per namespace, burst 10" as a user reads it (memory store, real counters, fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  async function pulls(limiter: Limiter, n: number, namespace = 'team-a'): Promise<number> {
    let admitted = 0;
    for (let i = 0; i < n; i++) if ((await limiter.check(subject(`job-${i}`, { namespace }))).ok) admitted++;
    return admitted;
  }

  it('admits 10 at once, 10 more every 10 minutes, never more than 60 in the hour; another namespace is apart', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    const limiter = await memoryLimiter([HUB]);
    expect(await pulls(limiter, 15)).toBe(10);
    const paced = await limiter.check(subject('late'));
    expect(paced).toMatchObject({ ok: false, rule: HUB.name, per: 'identity.namespace', limit: 10, windowS: 600 });
    expect(paced.ok === false && 'retryAfterMs' in paced && paced.retryAfterMs).toBe(600_000);
    expect(await pulls(limiter, 10, 'team-b')).toBe(10);
    for (let slice = 1; slice < 6; slice++) {
      vi.advanceTimersByTime(600_000);
      expect(await pulls(limiter, 15)).toBe(10);
    }
    // 60 used at 50 minutes: the next slice opens, the hour does not
    vi.advanceTimersByTime(600_000 - 1000);
    expect(await pulls(limiter, 5)).toBe(0);
    const windowed = await limiter.check(subject('late'));
    expect(windowed).toMatchObject({ ok: false, limit: 60, windowS: 3600, what: '60 per 1h, bursts of 10' });
    vi.advanceTimersByTime(1000);
    expect(await pulls(limiter, 15)).toBe(10);
    await limiter.close();
  });

  it('reports the hour window in the RateLimit headers of an admitted request', async () => {
    const limiter = await memoryLimiter([HUB]);
    const first = await limiter.check(subject('A'));
    expect(first.ok && headroomHeaders(first.headroom)).toEqual({
      'ratelimit-limit': '60;w=3600',
      'ratelimit-remaining': '59;w=3600',
    });
  });

  it('counts only what match selects: HEAD never, /token only when the match lets it', async () => {
    const limiter = await memoryLimiter([
      { ...HUB, rate: { per: '1h', count: 1 } },
      { name: 'tokens', match: 'request.kind == "token"', rate: { per: '1m', count: 1 } },
    ]);
    expect((await limiter.check(subject('A'))).ok).toBe(true);
    expect((await limiter.check(subject('A', { method: 'HEAD' }))).ok).toBe(true);
    expect((await limiter.check(subject('A', { kind: 'blob' }))).ok).toBe(true);
    expect((await limiter.check(subject('A', { upstream: 'ghcr' }))).ok).toBe(true);
    expect((await limiter.check(subject('A'))).ok).toBe(false);
    const token = (s: LimitSubject): LimitSubject => ({
      ...s,
      request: { ...s.request, kind: 'token', method: 'GET' },
    });
    expect((await limiter.check(token(subject('A')))).ok).toBe(true);
    expect(await limiter.check(token(subject('A')))).toMatchObject({ ok: false, rule: 'tokens', per: 'identity' });
    expect((await limiter.check(token(subject('B')))).ok).toBe(true);
  });
});

describe('the refusal', () => {
  it('names the limit, what it counts per and when it resets, never the key', async () => {
    const limiter = await memoryLimiter([
      { name: 'per-owner', key: 'claims.repository_owner', rate: { per: '1m', count: 1 } },
    ]);
    await limiter.check(subject('secret-subject'));
    const now = Date.now();
    const verdict = await limiter.check(subject('secret-subject'));
    const err = refusalOf(verdict, now)!;
    expect(err).toMatchObject({ status: 429, code: 'TOOMANYREQUESTS' });
    expect(err.message).toMatch(
      /^rate limit "per-owner" of 1 per 1m \(counted per claims\.repository_owner\) reached: resets in \d+s \(\d{4}-\d\d-\d\dT[\d:]+Z\)$/,
    );
    const everything = JSON.stringify({ message: err.message, detail: err.detail, headers: err.headers });
    for (const raw of ['acme', 'secret-subject', 'ci:']) expect(everything).not.toContain(raw);
    const byIdentity = await memoryLimiter([{ name: 'per-id', rate: { per: '1m', count: 1 } }]);
    await byIdentity.check(subject('secret-subject'));
    const other = refusalOf(await byIdentity.check(subject('secret-subject')), now)!;
    expect(other.message).toContain('(counted per identity) reached');
    expect(other.message).not.toContain('secret-subject');
  });

  it('carries Retry-After and the RateLimit headers of the limit that refused', () => {
    const err = refusalOf(
      {
        ok: false,
        rule: 'hub-pulls',
        keyClass: 'expression',
        per: 'identity.namespace',
        limit: 60,
        windowS: 3600,
        retryAfterMs: 61_000,
        what: '60 per 1h',
      },
      Date.UTC(2026, 0, 1),
    );
    expect(err!.message).toBe(
      'rate limit "hub-pulls" of 60 per 1h (counted per identity.namespace) reached: resets in 61s (2026-01-01T00:01:01Z)',
    );
    expect(err!.headers).toMatchObject({
      'retry-after': '61',
      'ratelimit-limit': '60;w=3600',
      'ratelimit-remaining': '0;w=3600',
    });
    expect(refusalOf({ ok: false, unavailable: 'down' }, 0)).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(refusalOf({ ok: true }, 0)).toBeUndefined();
  });
});
