import { describe, expect, it } from 'vitest';
import { connectionVerdict, sweepPeriodMs } from '../../../src/server/connections.js';
import { clientErrorAnswer, headProblem, listenerUrl } from '../../../src/server/listen.js';

describe('listener decisions', () => {
  it('refuses a head with more header lines than the limit, never truncates it', () => {
    expect(headProblem(200, 100)).toBeUndefined();
    const problem = headProblem(202, 100);
    expect(problem?.status).toBe(431);
    expect(problem?.message).toBe('more than 100 header lines in one request');
  });

  it('admits under the per-client cap, refuses as many as the cap over it, then drops', () => {
    expect(connectionVerdict(5, 0, 0, false)).toBe('admit'); // 0: no cap
    expect(connectionVerdict(1, 0, 2, false)).toBe('admit');
    expect(connectionVerdict(2, 0, 2, true)).toBe('admit'); // trusted proxies are exempt
    expect(connectionVerdict(2, 1, 2, false)).toBe('refuse');
    expect(connectionVerdict(2, 2, 2, false)).toBe('drop');
  });

  it('sweeps idle connections every quarter of the timeout, within 50 ms..1 s', () => {
    expect(sweepPeriodMs(0)).toBe(1000);
    expect(sweepPeriodMs(2000)).toBe(500);
    expect(sweepPeriodMs(100)).toBe(50);
    expect(sweepPeriodMs(600_000)).toBe(1000);
  });

  it("answers the parser's rejections by their code", () => {
    expect(clientErrorAnswer('HPE_HEADER_OVERFLOW', 16384)).toEqual(['431 Request Header Fields Too Large', 'request headers larger than 16384 bytes']);
    expect(clientErrorAnswer('ERR_HTTP_HEADERS_TIMEOUT', 1)[0]).toBe('408 Request Timeout');
    expect(clientErrorAnswer('ERR_HTTP_REQUEST_TIMEOUT', 1)[0]).toBe('408 Request Timeout');
    expect(clientErrorAnswer('HPE_INVALID_METHOD', 1)).toEqual(['400 Bad Request', 'malformed HTTP request']);
    expect(clientErrorAnswer(undefined, 1)[0]).toBe('400 Bad Request');
  });

  it('reports a wildcard listener on loopback and brackets IPv6 hosts', () => {
    expect(listenerUrl(false, '0.0.0.0', 5000)).toBe('http://127.0.0.1:5000');
    expect(listenerUrl(true, '::', 443)).toBe('https://127.0.0.1:443');
    expect(listenerUrl(false, '::1', 80)).toBe('http://[::1]:80');
    expect(listenerUrl(false, 'proxy.example', 8080)).toBe('http://proxy.example:8080');
  });
});
