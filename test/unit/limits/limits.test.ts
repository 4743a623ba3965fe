import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { buildConfig } from '../../../src/config/load.js';
import type { LimitRule } from '../../../src/config/types.js';
import { refusalOf, headroomHeaders } from '../../../src/limits/answer.js';
import { createLimiter } from '../../../src/limits/limiter.js';
import { costOf, counterPlans } from '../../../src/limits/rules.js';
import { storeKind } from '../../../src/limits/store.js';
import type { LimitSubject } from '../../../src/limits/types.js';
import { compileLimitKey } from '../../../src/policy/limit-key.js';
import { configProblem } from '../../support/config.js';

const logger = pino({ level: 'silent' });

function rulesOf(rules: unknown[], extra: Record<string, unknown> = {}) {
  return buildConfig({ limits: { rules, ...extra } }, {}, 'rap.yaml');
}

function subject(subjectName: string, namespace = 'team-a', upstream = 'hub'): LimitSubject {
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
    },
  };
}

describe('limits config', () => {
  it('reads rules and the store, with defaults', () => {
    const config = rulesOf([{ name: 'per-id', quota: { limit: 10, window: '1m' } }]);
    const rule = config.limits.rules[0]!;
    expect(rule).toMatchObject({ name: 'per-id', at: ['token', 'registry'], quota: { limit: 10, window: 60_000 } });
    expect(config.limits.store).toMatchObject({ failure: 'fail-open', timeout: 500 });
    expect(storeKind(config)).toBe('memory');
    expect(storeKind({ ...config, workers: 4 })).toBe('cluster');
    expect(
      storeKind({
        ...config,
        limits: { ...config.limits, store: { ...config.limits.store, redis: { url: 'redis://r:6379' } } },
      }),
    ).toBe('redis');
  });

  it('words its errors for the user', () => {
    expect(configProblem({ limits: { rules: [{ name: 'x' }] } })).toBe(
      'limits.rules[0]: needs a rate, a quota or both',
    );
    expect(
      configProblem({
        limits: {
          rules: [
            { name: 'x', rate: 1 },
            { name: 'x', rate: 2 },
          ],
        },
      }),
    ).toBe('limits.rules: two rules are named "x": names must be unique');
    expect(configProblem({ limits: { rules: [{ name: 'x', rate: 1, at: ['pull'] }] } })).toBe(
      'limits.rules[0].at[0]: must be a list of token, registry',
    );
    expect(configProblem({ limits: { store: { type: 'redis' } } })).toBe(
      'limits.store.redis: is required with type: redis (redis: {url: …})',
    );
    expect(configProblem({ limits: { store: { redis: { url: 'rediss://:secret@r:6380' } } } })).toBe(
      'limits.store.redis.url: must not hold the password: put it in a file and name it in passwordFile',
    );
    expect(configProblem({ limits: { store: { redis: { url: 'http://r' } } } })).toContain(
      'must start with redis:// or rediss://',
    );
    expect(configProblem({ limits: { rules: [{ name: 'x', rate: 1, costs: { layer: 1 } }] } })).toContain(
      'limits.rules[0].costs',
    );
  });
});

describe('limit arithmetic', () => {
  it('plans rate + burst and quota counters', () => {
    const rule = { name: 'r', at: ['token'], rate: 5, burst: 20, quota: { limit: 60, window: 3_600_000 } } as LimitRule;
    const [rate, quota] = counterPlans(rule);
    expect(rate!.spec).toEqual({ prefix: 'rap:r:rate', points: 5, durationS: 1, burst: { points: 15, durationS: 4 } });
    expect(quota).toMatchObject({ spec: { points: 60, durationS: 3600 }, limit: 60, what: '60 per 1h' });
    expect(counterPlans({ name: 's', at: ['token'], rate: 0.5, burst: 1 } as LimitRule)[0]!.spec).toEqual({
      prefix: 'rap:s:rate',
      points: 1,
      durationS: 2,
    });
  });

  it('costs by route kind; HEAD is free; /token always 1', () => {
    const pulls = {
      name: 'p',
      at: ['registry'],
      quota: { limit: 1, window: 1000 },
      costs: { manifest: 1 },
    } as LimitRule;
    expect(costOf(pulls, { place: 'registry', kind: 'manifest', method: 'GET' })).toBe(1);
    expect(costOf(pulls, { place: 'registry', kind: 'manifest', method: 'HEAD' })).toBe(0);
    expect(costOf(pulls, { place: 'registry', kind: 'blob', method: 'GET' })).toBe(0);
    expect(costOf({ ...pulls, costs: undefined }, { place: 'registry', kind: 'blob', method: 'GET' })).toBe(1);
    expect(costOf(pulls, { place: 'token' })).toBe(1);
  });

  it('answers 429 naming the limit, whom, and when it resets', () => {
    const err = refusalOf(
      {
        ok: false,
        rule: 'hub-pulls',
        who: 'team-a',
        keyClass: 'expression',
        limit: 60,
        windowS: 3600,
        retryAfterMs: 61_000,
        what: '60 per 1h',
      },
      Date.UTC(2026, 0, 1),
    );
    expect(err).toMatchObject({ status: 429, code: 'TOOMANYREQUESTS' });
    expect(err!.message).toBe(
      'rate limit "hub-pulls" (60 per 1h) reached for team-a: resets in 61s (2026-01-01T00:01:01Z)',
    );
    expect(err!.headers).toMatchObject({
      'retry-after': '61',
      'ratelimit-limit': '60;w=3600',
      'ratelimit-remaining': '0;w=3600',
    });
    expect(refusalOf({ ok: false, unavailable: 'down' }, 0)).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(refusalOf({ ok: true }, 0)).toBeUndefined();
    expect(headroomHeaders({ rule: 'r', limit: 10, remaining: 3, resetMs: 1, windowS: 60 })).toEqual({
      'ratelimit-limit': '10;w=60',
      'ratelimit-remaining': '3;w=60',
    });
  });
});

describe('memory limiter', () => {
  it('counts per identity: A is refused after its quota, B is not', async () => {
    const config = rulesOf([{ name: 'per-id', quota: { limit: 3, window: '1m' } }]);
    const limiter = createLimiter({
      rules: config.limits.rules,
      store: config.limits.store,
      kind: 'memory',
      keys: new Map(),
      logger,
    });
    const a = [];
    for (let i = 0; i < 5; i++) a.push((await limiter.check(subject('A'), { place: 'token' })).ok);
    expect(a).toEqual([true, true, true, false, false]);
    expect((await limiter.check(subject('B'), { place: 'token' })).ok).toBe(true);
    const refused = await limiter.check(subject('A'), { place: 'token' });
    expect(refused).toMatchObject({ ok: false, rule: 'per-id', who: 'ci:A', keyClass: 'identity', limit: 3 });
  });

  it('keys by a CEL expression and only counts its upstreams', async () => {
    const config = rulesOf([
      {
        name: 'hub',
        at: ['registry'],
        key: 'identity.namespace',
        upstreams: ['hub'],
        quota: { limit: 2, window: '1h' },
        costs: { manifest: 1 },
      },
    ]);
    const keys = new Map([['hub', compileLimitKey('hub', 'identity.namespace')]]);
    const limiter = createLimiter({
      rules: config.limits.rules,
      store: config.limits.store,
      kind: 'memory',
      keys,
      logger,
    });
    const pull = { place: 'registry' as const, kind: 'manifest', method: 'GET' };
    expect((await limiter.check(subject('A'), pull)).ok).toBe(true);
    expect((await limiter.check(subject('B'), pull)).ok).toBe(true);
    expect(await limiter.check(subject('C'), pull)).toMatchObject({ ok: false, who: 'team-a', keyClass: 'expression' });
    expect((await limiter.check(subject('C', 'team-b'), pull)).ok).toBe(true);
    expect((await limiter.check(subject('C', 'team-a', 'ghcr'), pull)).ok).toBe(true);
    expect((await limiter.check(subject('C'), { ...pull, kind: 'blob' })).ok).toBe(true);
  });

  it('refuses a key expression that is not a string at start-up', () => {
    expect(() => compileLimitKey('x', 'identity.namespce')).toThrow(/limits.rules "x": key: invalid CEL/);
    expect(() => compileLimitKey('x', '1 + 1')).toThrow(/must evaluate to a string, not int/);
    expect(compileLimitKey('x', 'claims.repository_owner')(subject('A'))).toBe('acme');
  });
});
