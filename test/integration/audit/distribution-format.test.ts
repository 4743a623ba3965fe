import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { freePort } from '../../fixtures/registry.js';

/**
 * `format: distribution` (issue 24, CONTRACT §9): the webhook speaks Distribution's notification
 * envelope. The registry behind the proxy is configured to send its OWN notifications to a second
 * receiver; skopeo pushes and pulls a 3-layer image through the proxy, and every event the
 * registry reports for those requests must arrive from the proxy with the same wire format
 * (method, content type, envelope) and the same target fields, the actor being the workload.
 */
const run = promisify(execFile);
let stack: RegistryAndProxy;
let image: OciImage;
let work: string;

interface Delivery {
  method?: string;
  headers: IncomingHttpHeaders;
  body: { events: WireEvent[] };
}
interface WireEvent {
  id: string;
  timestamp: string;
  action: string;
  target: Record<string, unknown> & { repository: string; digest?: string; url?: string };
  request: { id: string; addr: string; host?: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr?: string; instanceID?: string };
}

/** A receiver that keeps every POST it gets, answering as Distribution's endpoints expect (2xx). */
async function receiver(into: Delivery[]): Promise<{ server: Server; url: string }> {
  const port = await freePort();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      into.push({ method: req.method, headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString()) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${port}/events` };
}

const fromRegistry: Delivery[] = [];
const fromProxy: Delivery[] = [];
let servers: Server[] = [];

beforeAll(async () => {
  const theirs = await receiver(fromRegistry);
  const ours = await receiver(fromProxy);
  servers = [theirs.server, ours.server];
  work = mkdtempSync(join(tmpdir(), 'rap-distribution-'));
  stack = await startRegistryAndProxy({
    registry: { notifications: theirs.url },
    config: {
      audit: {
        sinks: [{ type: 'webhook', url: ours.url, format: 'distribution', retryMin: '100ms', batchSize: 5 }],
      },
    },
  });
  image = buildOciImage(join(work, 'image'), { layers: 3, layerBytes: 64 * 1024 });
});
afterAll(async () => {
  await stack?.stop();
  for (const s of servers) s.close();
});

const events = (from: Delivery[]) =>
  from.flatMap((d) => d.body.events).filter((e) => e.target.repository === 'team-a/notified');

/** What identifies one notified access across both senders (ids, times and addresses differ). */
const key = (e: WireEvent) => `${e.action} ${e.request.method} ${e.target.digest ?? ''}`;

/** The target as Distribution describes content: everything but its URL's host. */
const target = (e: WireEvent): Record<string, unknown> => ({
  ...e.target,
  url: e.target.url && new URL(e.target.url).pathname,
});

describe('webhook format: distribution', () => {
  it("every push and pull the registry itself notifies arrives from the proxy in Distribution's own envelope", async () => {
    const { proxy } = stack;
    const id = await proxy.mintIdentity();
    const sub = JSON.parse(Buffer.from(id.split('.')[1]!, 'base64url').toString()).sub as string;
    const ref = `docker://${proxy.host}/team-a/notified:v1`;
    const skopeo = requireTool('skopeo');
    await run(skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', `x:${id}`, image.ref, ref], {
      timeout: 60_000,
    });
    await run(
      skopeo,
      ['copy', '--src-tls-verify=false', '--src-creds', `x:${id}`, ref, `oci:${join(work, 'pulled')}:v1`],
      { timeout: 60_000 },
    );
    // The registry notifies the GETs and PUTs we audit (and blob HEADs, which are not audited events).
    const expected = () => events(fromRegistry).filter((e) => e.request.method === 'GET' || e.request.method === 'PUT');
    const ours = () => new Set(events(fromProxy).map(key));
    // Both senders deliver asynchronously: wait for the registry's five pulls (the last to happen) and for ours of each.
    const pulls = () => expected().filter((e) => e.action === 'pull').length;
    for (let i = 0; i < 400 && (pulls() < 5 || !expected().every((e) => ours().has(key(e)))); i++)
      await new Promise((r) => setTimeout(r, 25));

    const theirs = expected();
    // pushed: 3 layers, the config and the manifest; pulled: the manifest, the config and 3 layers
    expect(theirs.filter((e) => e.action === 'push' && e.target.tag === 'v1')).toHaveLength(1);
    expect(theirs.filter((e) => e.action === 'pull')).toHaveLength(5);
    const byKey = new Map(events(fromProxy).map((e) => [key(e), e]));
    for (const t of theirs) {
      const o = byKey.get(key(t));
      expect(o, key(t)).toBeDefined();
      // A blob push's size is not known to the proxy (the upload came in chunks before the closing PUT).
      const blobPush = t.action === 'push' && t.target.mediaType === 'application/octet-stream';
      const { size: _s, length: _l, ...withoutSize } = target(t);
      expect(target(o!), key(t)).toEqual(blobPush ? withoutSize : target(t));
      expect(o!.actor, key(t)).toEqual({ name: sub });
      expect(o!.request).toMatchObject({ method: t.request.method, host: proxy.host });
      expect(o!.request.useragent, key(t)).toBe(t.request.useragent);
      expect(o!.request.addr).toBe('127.0.0.1');
      expect(o!.source.addr).toBe(new URL(proxy.config.publicURL).host);
      expect(o!.timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
    }
    // The wire format: what Distribution's HTTP sink sends, an envelope of events POSTed as its media
    // type: v2 from Distribution 3 (notifications/event.go), v1 from the 2.8 binary the tests run.
    for (const d of [...fromRegistry, ...fromProxy]) {
      expect(d.method).toBe('POST');
      expect(d.headers['content-type']).toMatch(/^application\/vnd\.docker\.distribution\.events\.v[12]\+json$/);
      expect(Object.keys(d.body)).toEqual(['events']);
    }
    for (const d of fromProxy)
      expect(d.headers['content-type']).toBe('application/vnd.docker.distribution.events.v2+json');
    // Only what Distribution notifies: no token decisions, no refused or failed requests.
    expect(fromProxy.flatMap((d) => d.body.events).every((e) => ['pull', 'push', 'delete'].includes(e.action))).toBe(
      true,
    );
  });
});
