import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { freePort } from '../../fixtures/registry.js';

/**
 * Audit events of a real pull (issue 24): skopeo pushes then pulls a 3-layer image through the
 * proxy; the events name the digest Distribution itself reports (its own HEAD, asked directly:
 * the notifications fixture is left for later), the workload's subject and claims, and each blob's
 * size. The same events reach a webhook as CloudEvents batches and an append-only file.
 */
const run = promisify(execFile);
let stack: RegistryAndProxy;
let image: OciImage;
let work: string;
let receiver: Server;
const received: { contentType?: string; events: { type: string; data: Record<string, unknown> }[] }[] = [];

interface Event {
  audit: string;
  schema: string;
  action: string;
  repository: string;
  reference?: string;
  digest?: string;
  bytes: number;
  status: number;
  issuer?: string;
  subject?: string;
  claims?: Record<string, unknown>;
  upstream?: string;
  clientIP: string;
  requestId?: string;
}
const events = () =>
  stack.proxy.logs
    .filter((l) => l.includes('"audit":"registry"'))
    .map((l) => JSON.parse(l) as Event)
    .filter((e) => e.repository === 'team-a/audited');

beforeAll(async () => {
  const port = await freePort();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ contentType: req.headers['content-type'], events: JSON.parse(Buffer.concat(chunks).toString()) });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(port, '127.0.0.1', r));
  work = mkdtempSync(join(tmpdir(), 'rap-audit-'));
  stack = await startRegistryAndProxy({
    config: {
      audit: {
        claims: ['team'],
        sinks: [
          { type: 'stdout' },
          { type: 'file', path: join(work, 'audit.jsonl') },
          { type: 'webhook', url: `http://127.0.0.1:${port}/events`, retryMin: '100ms' },
        ],
      },
    },
  });
  image = buildOciImage(join(work, 'image'), { layers: 3, layerBytes: 128 * 1024 });
});
afterAll(async () => {
  await stack?.stop();
  receiver?.close();
});

async function skopeo(args: string[]): Promise<void> {
  await run(requireTool('skopeo'), args, { timeout: 60_000 });
}

describe('audit events of a skopeo pull through the proxy', () => {
  it('one manifest event with the digest Distribution reports and the workload subject; blob events with the blob sizes', async () => {
    const { proxy, registry } = stack;
    const id = await proxy.mintIdentity();
    const sub = JSON.parse(Buffer.from(id.split('.')[1]!, 'base64url').toString()).sub as string;
    const ref = `docker://${proxy.host}/team-a/audited:v1`;
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `x:${id}`, image.ref, ref]);
    const pushed = events();
    expect(pushed.filter((e) => e.action === 'manifest.put')).toHaveLength(1);
    expect(pushed.filter((e) => e.action === 'blob.upload').length).toBeGreaterThanOrEqual(4);

    const before = events().length;
    await skopeo(['copy', '--src-tls-verify=false', '--src-creds', `x:${id}`, ref, `oci:${join(work, 'pulled')}:v1`]);
    await new Promise((r) => setTimeout(r, 50)); // events are emitted one macrotask after the response closes
    const pulled = events().slice(before);

    const head = await fetch(`${registry.url}/v2/team-a/audited/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const distributionDigest = head.headers.get('docker-content-digest');
    const manifests = pulled.filter((e) => e.action === 'manifest.get');
    expect(manifests).toHaveLength(1);
    expect(manifests[0]).toMatchObject({
      schema: 'rap.audit/v1',
      reference: 'v1',
      digest: distributionDigest,
      issuer: 'ci',
      subject: sub,
      claims: { team: 'team-a' },
      status: 200,
      upstream: '',
    });
    // skopeo may rewrite what it pushes (compression): the blobs are those of the manifest Distribution holds.
    const manifest = (await (
      await fetch(`${registry.url}/v2/team-a/audited/manifests/${distributionDigest}`, {
        headers: { accept: head.headers.get('content-type')! },
      })
    ).json()) as {
      config: { digest: string; size: number };
      layers: { digest: string; size: number }[];
    };
    expect(manifest.layers).toHaveLength(3);

    const blobs = pulled.filter((e) => e.action === 'blob.get');
    const sizes = new Map([manifest.config, ...manifest.layers].map((d) => [d.digest, d.size]));
    expect(blobs.map((b) => b.digest).sort()).toEqual([...sizes.keys()].sort());
    for (const b of blobs) {
      const size = (await fetch(`${registry.url}/v2/team-a/audited/blobs/${b.digest}`, { method: 'HEAD' })).headers.get(
        'content-length',
      );
      expect(b.bytes, b.digest).toBe(Number(size));
      expect(b.bytes, b.digest).toBe(sizes.get(b.digest!));
      expect(b.subject).toBe(sub);
    }
    // One event per request, never per chunk: as many events as requests the pull made.
    expect(new Set(pulled.map((e) => e.requestId)).size).toBe(pulled.length);
  });

  it('the same events reach the webhook as CloudEvents batches, and the file', async () => {
    const all = events();
    for (
      let i = 0;
      i < 200 &&
      received.flatMap((b) => b.events).filter((e) => e.data.repository === 'team-a/audited').length < all.length;
      i++
    )
      await new Promise((r) => setTimeout(r, 25));
    const delivered = received.flatMap((b) => b.events).filter((e) => e.data.repository === 'team-a/audited');
    expect(delivered.map((e) => e.data.requestId).sort()).toEqual(all.map((e) => e.requestId).sort());
    expect(received.every((b) => b.contentType === 'application/cloudevents-batch+json')).toBe(true);
    expect(delivered[0]).toMatchObject({
      specversion: '1.0',
      source: stack.proxy.config.publicURL,
      datacontenttype: 'application/json',
    });
    const lines = readFileSync(join(work, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Event);
    expect(
      lines
        .filter((e) => e.audit === 'registry' && e.repository === 'team-a/audited')
        .map((e) => e.requestId)
        .sort(),
    ).toEqual(all.map((e) => e.requestId).sort());
    expect(lines.some((e) => e.audit === 'token')).toBe(true);
  });
});
