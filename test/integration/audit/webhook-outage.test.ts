import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type ServerResponse } from 'node:http';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { freePort } from '../../fixtures/registry.js';

/**
 * A webhook sink that is down, then slow, then back (issue 24): serving never waits for it, the
 * drop counter counts exactly the events that were lost, and delivery resumes with what was queued.
 * No timing is asserted. Each unauthenticated manifest GET is one audited request (a 401 challenge).
 */
let proxy: TestProxy;
let port: number;
let mode: 'slow' | 'up' = 'slow';
const held: ServerResponse[] = [];
const delivered = new Set<string>();
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (mode === 'slow') return void held.push(res); // received, never answered: the sink times out
    for (const e of JSON.parse(Buffer.concat(chunks).toString()) as { data: { requestId: string } }[])
      delivered.add(e.data.requestId);
    res.writeHead(202).end();
  });
});

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 600 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(cond(), what).toBe(true);
};

async function requests(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${proxy.url}/v2/team-a/app/manifests/v${i}`);
    expect(res.status).toBe(401);
    ids.push(res.headers.get('x-request-id')!);
  }
  return ids;
}

async function droppedTotal(): Promise<number> {
  const text = await (await fetch(`${proxy.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`rap_audit_dropped_total{sink="webhook:127.0.0.1:${port}"}`));
  return Number(line?.split(' ').pop());
}

beforeAll(async () => {
  port = await freePort();
  proxy = await startProxy({
    upstream: 'http://127.0.0.1:9',
    config: {
      audit: {
        sinks: [
          {
            type: 'webhook',
            url: `http://127.0.0.1:${port}/`,
            queue: 5,
            batchSize: 2,
            timeout: '300ms',
            retryMin: '100ms',
            retryMax: '200ms',
          },
        ],
      },
    },
  });
});
afterAll(async () => {
  await proxy?.stop();
  held.forEach((r) => r.destroy());
  server.close();
});

describe('a webhook sink down, then slow, then back', () => {
  it('drops exactly what overflowed its queue, and resumes delivering', async () => {
    // Down: nothing listens. Five events wait in the queue, the other fifteen are dropped.
    const down = await requests(20);
    await until(() => proxy.logs.some((l) => l.includes('audit sink delivery failed')), 'a failed delivery was logged');
    expect(await droppedTotal()).toBe(15);
    expect(proxy.logs.some((l) => l.includes('audit events dropped'))).toBe(true);
    // Slow: the receiver takes batches and never answers; the queue stays full, new events drop.
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await until(() => held.length > 0, 'the slow receiver got a batch');
    await requests(10);
    expect(await droppedTotal()).toBe(25);
    // Back: the five queued events arrive, and new ones follow.
    mode = 'up';
    await until(() => down.slice(0, 5).every((id) => delivered.has(id)), 'the queued events were delivered');
    const after = await requests(3);
    await until(() => after.every((id) => delivered.has(id)), 'delivery resumed');
    // Lost = sent − delivered, exactly what the counter says.
    expect(await droppedTotal()).toBe(20 + 10 + 3 - delivered.size);
    expect(delivered.size).toBe(8);
  });
});
