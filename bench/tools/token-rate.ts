/** /token issuance rate with distinct identity tokens, three runs (for A/B of token-path changes). */
import { measureLatency } from '../lib/load.js';
import { startBenchProxy } from '../lib/proxy.js';
const proxy = await startBenchProxy('http://127.0.0.1:9');
const basics: string[] = [];
for (let i = 0; i < 18_000; i++)
  basics.push(`Basic ${Buffer.from(`bench:${await proxy.identity(i + 1)}`).toString('base64')}`);
for (let run = 0; run < 3; run++) {
  const r = await measureLatency({
    url: proxy.url,
    method: 'GET',
    path: '/token?service=registry.bench&scope=repository%3Abench%2Fapp%3Apull',
    headers: basics.slice(run * 6000, run * 6000 + 6000).map((b) => ({ authorization: b })),
    concurrency: 16,
    total: 6000,
    expectStatus: 200,
  });
  console.log(
    `run ${run + 1}: ${r.rps.toFixed(0)}/s p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms errors ${r.errors}`,
  );
}
await proxy.stop();
