import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createAuditor } from '../../../src/audit/auditor.js';
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
