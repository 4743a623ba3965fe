import { describe, expect, it } from 'vitest';
import { freePort } from '../fixtures/registry.js';
import { startRecordingUpstream } from '../fixtures/recording-upstream.js';
import { startProxy } from '../helpers/server.js';

/**
 * Issue 9 item 11: /readyz answered anonymous callers with the upstream's URL and the socket error
 * ("upstream http://10.0.3.7:5000 did not answer: connect ECONNREFUSED …") — a map of the inside.
 * It now names only the failed check; the details go to the operator's log.
 */
describe('/readyz tells anonymous callers which check failed, nothing more', () => {
  it('a dead upstream: 503 "upstream unreachable", no address or error text; the log has both', async () => {
    const port = await freePort(); // nothing listens there
    const p = await startProxy({ upstream: `http://127.0.0.1:${port}` });
    try {
      const r = await fetch(`${p.url}/readyz`);
      const text = await r.text();
      expect(r.status).toBe(503);
      expect(JSON.parse(text)).toEqual({ status: 'not ready', reasons: ['upstream unreachable'] });
      expect(text).not.toContain(String(port));
      expect(text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|http:/);
      const line = p.logs.find((l) => l.includes('readiness: upstream unreachable'));
      expect(line).toBeDefined();
      expect(line).toContain(`127.0.0.1:${port}`);
      expect(line).toMatch(/ECONNREFUSED/);
    } finally {
      await p.stop();
    }
  });

  it('a live upstream: 200 ready; the probe is a plain GET /v2/ without any client credentials', async () => {
    const up = await startRecordingUpstream();
    const p = await startProxy({ upstream: up.url });
    try {
      const r = await fetch(`${p.url}/readyz`, { headers: { authorization: 'Basic bm9ib2R5OnNlY3JldA==' } });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ status: 'ready' });
      expect(up.requests.map((q) => `${q.method} ${q.url}`)).toEqual(['GET /v2/']);
      expect(up.requests[0]!.headers.authorization).toBeUndefined();
    } finally {
      await p.stop();
      await up.stop();
    }
  });
});
