import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobDigest, pullBlob, pushBlob } from '../support/blob.js';
import { startRegistry, type Registry } from '../fixtures/registry.js';
import { startChildProxy, type ChildProxy } from '../helpers/child-proxy.js';

/**
 * Streaming is the product: a 1 GiB blob is pushed and pulled through the proxy (a separate
 * process) while its peak RSS is read from /proc. Memory is asserted, not time.
 */
const SIZE = Number(process.env.RAP_STREAM_TEST_BYTES ?? 1024 ** 3);
const RSS_LIMIT = 150 * 1024 * 1024;

let registry: Registry;
let proxy: ChildProxy;

beforeAll(async () => {
  registry = await startRegistry();
  // The built proxy (npm test builds first): the same code a user runs, without the TypeScript loader.
  proxy = await startChildProxy(registry.url);
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('streaming', () => {
  it(`pushes and pulls a ${Math.round(SIZE / 1024 ** 2)} MiB blob with the proxy's peak RSS under 150 MB`, async () => {
    const token = await proxy.registryToken(['repository:big/blob:pull,push']);
    const headers = { authorization: `Bearer ${token}` };
    const digest = await blobDigest(SIZE, 7);
    const baseline = proxy.rss();
    await pushBlob(proxy.url, 'big/blob', SIZE, digest, headers, 7);
    await pullBlob(proxy.url, 'big/blob', digest, SIZE, headers, true);
    const peak = proxy.peakRss();
    console.log(`streaming ${SIZE} bytes: proxy RSS before ${(baseline / 1e6).toFixed(1)} MB, peak ${(peak / 1e6).toFixed(1)} MB`);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(RSS_LIMIT);
  }, 240_000);
});
