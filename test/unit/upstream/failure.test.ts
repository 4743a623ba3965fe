import { describe, expect, it } from 'vitest';
import { upstreamAuthFailureKind, upstreamFailure } from '../../../src/upstream/failure.js';
import { judgeAuthFailure, judgeUpstreamAnswer } from '../../../src/upstream/probe.js';
import { OutboundError } from '../../../src/http/outbound.js';

/** The pure decisions behind "502/503 bodies say which side failed" and /readyz's credentials check. */
describe('upstreamFailure', () => {
  it('names the failed side in the message and the reason phrase, and never an address', () => {
    expect(upstreamFailure('unreachable', 'ECONNREFUSED')).toEqual({
      status: 502,
      message:
        'upstream registry unreachable (ECONNREFUSED): the registry behind this proxy did not answer; your credentials were accepted',
      reason: 'Bad Gateway (upstream registry unreachable)',
    });
    expect(upstreamFailure('credentials')).toMatchObject({
      status: 502,
      reason: "Bad Gateway (upstream rejected the proxy's credentials)",
    });
    expect(upstreamFailure('timeout')).toMatchObject({
      status: 504,
      reason: 'Gateway Timeout (upstream registry did not answer in time)',
    });
    expect(upstreamFailure('unconfigured')).toMatchObject({
      status: 503,
      reason: 'Service Unavailable (no upstream registry configured)',
    });
    // a reason phrase is VCHAR / SP / HTAB only (RFC 9112): Node refuses anything else
    for (const k of ['unreachable', 'credentials', 'timeout', 'unconfigured'] as const)
      expect(upstreamFailure(k).reason).toMatch(/^[\x20-\x7e]+$/);
  });

  it('tells an unreachable token server from refused or unreadable credentials', () => {
    expect(
      upstreamAuthFailureKind(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' })),
    ).toBe('unreachable');
    expect(upstreamAuthFailureKind(new Error('upstream token server https://t/token answered HTTP 401'))).toBe(
      'credentials',
    );
    expect(
      upstreamAuthFailureKind(
        Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', path: '/secrets/pw' }),
      ),
    ).toBe('credentials');
  });

  it('a token service that does not answer in time is a timeout, one that answers past the size cap a bad answer', () => {
    const timeout = new OutboundError('auth.test did not answer within 5000 ms', 'timeout', { code: 'ETIMEDOUT' });
    const tooLarge = new OutboundError('auth.test answered HTTP 200 with more than 65536 bytes: refused', 'too-large', {
      status: 200,
    });
    expect(upstreamAuthFailureKind(timeout)).toBe('timeout');
    expect(upstreamAuthFailureKind(tooLarge)).toBe('bad-answer');
    expect(
      upstreamAuthFailureKind(
        new OutboundError('auth.test: connect ECONNREFUSED', 'network', { code: 'ECONNREFUSED' }),
      ),
    ).toBe('unreachable');
    expect(upstreamFailure('bad-answer')).toMatchObject({
      status: 502,
      reason: 'Bad Gateway (upstream sent an oversized answer)',
    });
    expect(upstreamFailure('bad-answer').reason).toMatch(/^[\x20-\x7e]+$/);
    expect(judgeAuthFailure(timeout)).toMatchObject({ reason: 'upstream unreachable' });
    expect(judgeAuthFailure(tooLarge)).toMatchObject({ reason: 'upstream sent an oversized answer' });
  });
});

describe('readiness of the upstream', () => {
  it('401 and 407 with the proxy\'s credentials are "rejected"; any other answer proves it up', () => {
    expect(judgeUpstreamAnswer(200, 'basic')).toEqual({ ok: true });
    expect(judgeUpstreamAnswer(404, 'none')).toEqual({ ok: true });
    expect(judgeUpstreamAnswer(401, 'none')).toEqual({
      ok: false,
      reason: "upstream rejected the proxy's credentials",
      detail:
        'GET /v2/ answered HTTP 401 and upstream.auth is none: the upstream needs credentials (set upstream.auth)',
    });
    expect(judgeUpstreamAnswer(407, 'bearer')).toMatchObject({
      ok: false,
      detail: "GET /v2/ answered HTTP 407 with the proxy's upstream.auth (bearer): check them",
    });
    expect(judgeAuthFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({
      reason: 'upstream unreachable',
    });
    expect(judgeAuthFailure(new Error('upstream token server answered HTTP 401'))).toMatchObject({
      reason: "upstream rejected the proxy's credentials",
    });
  });
});
