/** A/B of stream buffer sizes: pull and push throughput through the proxy with RAP_STREAM_HWM values. */
import { blobDigest, pullBlob, pushBlob } from '../lib/blob.js';
import { startBenchProxy } from '../lib/proxy.js';
import { startBenchRegistry } from '../lib/registry.js';
const size = 512 * 2 ** 20;
const registry = await startBenchRegistry();
const digest = await blobDigest(size, 5);
await pushBlob(registry.url, 'bench/big', size, digest, {}, 5);
const values = (process.argv[2] ?? '0,262144').split(',');
for (let rep = 0; rep < 3; rep++) {
  for (const hwm of values) {
    const proxy = await startBenchProxy(registry.url, { RAP_STREAM_HWM: hwm });
    const headers = { authorization: `Bearer ${await proxy.registryToken(['repository:bench/big:pull,push'])}` };
    const pull = await pullBlob(proxy.url, 'bench/big', digest, size, headers);
    const push = await pushBlob(proxy.url, 'bench/big', size, digest, headers, 5);
    console.log(`hwm ${hwm}: pull ${(size / 2 ** 20 / pull).toFixed(0)} MiB/s, push ${(size / 2 ** 20 / push).toFixed(0)} MiB/s`);
    await proxy.stop();
  }
}
const direct = await pullBlob(registry.url, 'bench/big', digest, size);
console.log(`direct pull ${(size / 2 ** 20 / direct).toFixed(0)} MiB/s`);
await registry.stop();
