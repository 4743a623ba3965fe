import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { freePort } from '../../support/net.js';
import { MANIFEST_TYPE, seedManifest } from '../../support/seed.js';

/**
 * A collector that refuses connections: every request is still served, finished spans wait in the
 * bounded queue (4 here, so a batch is due at once and the queue overflows), and the log says once
 * that spans are being dropped.
 */
let stack: RegistryAndProxy;
let deadPort: number;

beforeAll(async () => {
  deadPort = await freePort(); // picked and never listened on: connections are refused
  stack = await startRegistryAndProxy({
    config: { tracing: { otlpEndpoint: `http://127.0.0.1:${deadPort}`, queueSize: 4, timeout: '200ms' } },
  });
  await seedManifest(stack.registry.url, 'team-a/untraced');
});
afterAll(() => stack?.stop());

describe('tracing with a dead collector', () => {
  it('serves every request, and logs once that the collector takes no spans', async () => {
    const { proxy } = stack;
    const token = await proxy.registryToken(['repository:team-a/untraced:pull'], { team: 'team-a' });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${proxy.url}/v2/team-a/untraced/manifests/latest`, {
        headers: { authorization: `Bearer ${token}`, accept: MANIFEST_TYPE },
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses).toEqual(Array(20).fill(200));
    const failing = () => proxy.logs.filter((l) => l.includes('tracing: the collector did not take spans'));
    for (let i = 0; i < 100 && failing().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(failing()).toHaveLength(1);
    expect(JSON.parse(failing()[0]!)).toMatchObject({ collector: `http://127.0.0.1:${deadPort}/v1/traces` });
  });
});
