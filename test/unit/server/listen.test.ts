import { describe, expect, it } from 'vitest';
import { connectionVerdict, sweepPeriodMs } from '../../../src/server/connections.js';
import { connectionCap, openFilesLimit, OVER_CAP_RESERVE } from '../../../src/server/connection-cap.js';
import { clientErrorAnswer, headProblem, listenerUrl, refusedAnswer } from '../../../src/server/listen.js';
import { OciError } from '../../../src/oci/errors.js';

const LIMITS = (soft: string, hard: string) =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             96367                96367                processes ',
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n');

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

  it('past the total cap, lets in only the reserve (for probes and a 503), then drops', () => {
    expect(connectionVerdict(99, 0, 100, false, OVER_CAP_RESERVE)).toBe('admit');
    expect(connectionVerdict(100, 0, 100, false, OVER_CAP_RESERVE)).toBe('refuse');
    expect(connectionVerdict(100, OVER_CAP_RESERVE - 1, 100, false, OVER_CAP_RESERVE)).toBe('refuse');
    expect(connectionVerdict(100, OVER_CAP_RESERVE, 100, false, OVER_CAP_RESERVE)).toBe('drop');
  });

  it.each([
    ['a soft limit below the hard one', LIMITS('512', '4096'), 512],
    ['equal limits', LIMITS('1048576', '1048576'), 1048576],
    ['unlimited', LIMITS('unlimited', 'unlimited'), undefined],
    ['no such line', 'Limit Soft Limit Hard Limit Units\nMax processes 1 1 processes', undefined],
    ['garbage', LIMITS('lots', '1'), undefined],
    ['zero', LIMITS('0', '0'), undefined],
    ['empty', '', undefined],
  ])('reads the soft open-files limit from /proc/self/limits: %s', (_what, text, expected) => {
    expect(openFilesLimit(text)).toBe(expected);
  });

  it.each([
    // configured, open files, cap, lowered
    [2048, 20_000, 2048, false], // fits: (20000 - 144) / 2 = 9928
    [2048, 512, 184, true], // (512 - 128 - 16) / 2
    [2048, 1024, 440, true],
    [440, 1024, 440, false],
    [441, 1024, 440, true],
    [0, 512, 184, true], // 0 (no cap of ours) still may not exceed the descriptors
    [2048, 100, 1, true], // absurdly low: one connection, never none or negative
    [2048, undefined, 2048, false], // not Linux or unreadable: as configured
    [0, undefined, 0, false],
  ])(
    'the total cap for maxConnections %s under an open-files limit of %s is %s',
    (configured, openFiles, cap, lowered) => {
      const result = connectionCap(configured, openFiles);
      expect(result).toMatchObject({ cap, lowered });
      if (openFiles !== undefined && result.cap > 1) expect(144 + 2 * result.cap).toBeLessThanOrEqual(openFiles);
    },
  );

  it('names the open-files limit that would keep the configured cap', () => {
    expect(connectionCap(2048, 512).needed).toBe(128 + 16 + 4096);
    expect(connectionCap(2048, connectionCap(2048, 512).needed)).toMatchObject({ cap: 2048, lowered: false });
  });

  it('on a connection refused for a cap, a probe is served and anything else gets a 503 naming the cap', () => {
    expect(refusedAnswer('total', '/healthz', '127.0.0.1')).toBe('serve');
    expect(refusedAnswer('peer', '/readyz?verbose', '127.0.0.1')).toBe('serve');
    const total = refusedAnswer('total', '/token', '127.0.0.9') as OciError;
    expect(total).toBeInstanceOf(OciError);
    expect(total.status).toBe(503);
    expect(total.message).toBe('the proxy is at its connection limit: retry');
    const peer = refusedAnswer('peer', '/v2/', '127.0.0.9') as OciError;
    expect(peer.message).toBe('too many connections from 127.0.0.9: retry');
    for (const url of ['/healthz/../v2/', '/metrics', '/v2/healthz', undefined])
      expect(refusedAnswer('total', url, 'x')).toBeInstanceOf(OciError);
  });

  it('sweeps idle connections every quarter of the timeout, within 50 ms..1 s', () => {
    expect(sweepPeriodMs(0)).toBe(1000);
    expect(sweepPeriodMs(2000)).toBe(500);
    expect(sweepPeriodMs(100)).toBe(50);
    expect(sweepPeriodMs(600_000)).toBe(1000);
  });

  it("answers the parser's rejections by their code", () => {
    expect(clientErrorAnswer('HPE_HEADER_OVERFLOW', 16384)).toEqual([
      '431 Request Header Fields Too Large',
      'request headers larger than 16384 bytes',
    ]);
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
