import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createAuditor } from '../../../src/audit/auditor.js';
import { registryEvent } from '../../../src/audit/events.js';
import { createLogger } from '../../../src/log.js';
import { classify, isRouteError, type Route } from '../../../src/oci/route.js';
import { auditRequest } from '../../../src/proxy/audit.js';

const logger = createLogger('silent');
const route = ((): Route => {
  const r = classify('GET', '/v2/team-a/app/manifests/v1', '');
  if (isRouteError(r)) throw r;
  return r;
})();
const req = { headers: {}, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
const res = { once: () => res } as unknown as ServerResponse;

describe('an auditor without sinks gathers nothing', () => {
  it('with sinks: [] it is inactive and a manifest request gets no recorder', () => {
    const auditor = createAuditor({ audit: { sinks: [], claims: [] }, publicURL: 'http://127.0.0.1' }, logger);
    expect(auditor.active).toBe(false);
    expect(auditRequest(req, res, route, auditor)).toBeUndefined();
  });

  it('with the default stdout sink it is active and the same request is recorded', () => {
    const auditor = createAuditor(
      { audit: { sinks: [{ type: 'stdout' }], claims: [] }, publicURL: 'http://127.0.0.1' },
      logger,
    );
    expect(auditor.active).toBe(true);
    expect(auditRequest(req, res, route, auditor)).toBeDefined();
  });
});

describe('the stdout sink', () => {
  it("writes one line per event with pino's time only, and redacts a listed claim named like a secret", () => {
    const lines: string[] = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const auditor = createAuditor(
      { audit: { sinks: [{ type: 'stdout' }], claims: ['token', 'team'] }, publicURL: 'http://127.0.0.1' },
      createLogger('info', capture),
    );
    const facts = {
      action: 'manifest.get' as const,
      method: 'GET',
      repository: 'team-a/app',
      reference: 'v1',
      bytes: { upload: 0, download: 512 },
      status: 200,
      ms: 1.26,
      clientIP: '127.0.0.1',
      tokenSubject: 'ci:repo:acme/app',
      identityClaims: { token: 'eyJ.secret.jwt', team: 'a', other: 'x' },
    };
    auditor.emit(registryEvent(facts, auditor.claims, '2026-12-06T00:00:00.000Z'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('eyJ.secret.jwt');
    expect(lines[0]!.match(/"time":/g)).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({
      msg: 'registry access',
      audit: 'registry',
      issuer: 'ci',
      subject: 'repo:acme/app',
      claims: { token: '[redacted]', team: 'a' },
      bytes: 512,
      ms: 1.3,
    });
    expect(typeof line.time).toBe('number');
  });
});
