/**
 * Profiles the proxy under one workload (manifest HEADs at 16 clients, or /token issuance) and prints
 * the CPU profile summary. Usage: node --import tsx bench/tools/profile-head.ts [head|token]
 */
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { MANIFEST_TYPE, seedManifest } from '../../test/support/seed.js';
import { measureLatency } from '../lib/load.js';
import { startBenchProxy } from '../lib/proxy.js';
import { startBenchRegistry } from '../lib/registry.js';

const what = process.argv[2] ?? 'head';
const registry = await startBenchRegistry();
const dir = mkdtempSync(join(tmpdir(), 'rap-prof-'));
const proxy = await startBenchProxy(registry.url, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
try {
  if (what === 'head') {
    await seedManifest(registry.url, 'bench/app');
    const mt = MANIFEST_TYPE;
    const headers = { accept: mt, authorization: `Bearer ${await proxy.registryToken(['repository:bench/app:pull'])}` };
    const r = await measureLatency({
      url: proxy.url,
      method: 'HEAD',
      path: '/v2/bench/app/manifests/latest',
      headers,
      concurrency: 16,
      total: 6000,
      expectStatus: 200,
    });
    console.log(`HEAD x16: p50 ${r.p50.toFixed(2)} ms, ${r.rps.toFixed(0)}/s, errors ${r.errors}`);
  } else if (what === 'pull' || what === 'push') {
    const { blobDigest, pullBlob, pushBlob } = await import('../../test/support/blob.js');
    const size = 512 * 2 ** 20;
    const digest = await blobDigest(size, 5);
    const headers = { authorization: `Bearer ${await proxy.registryToken(['repository:bench/big:pull,push'])}` };
    if (what === 'pull') {
      await pushBlob(registry.url, 'bench/big', size, digest, {}, 5);
      const secs = await pullBlob(proxy.url, 'bench/big', digest, size, headers);
      console.log(`pull: ${(size / 2 ** 20 / secs).toFixed(0)} MiB/s`);
    } else {
      const secs = await pushBlob(proxy.url, 'bench/big', size, digest, headers, 5);
      console.log(`push: ${(size / 2 ** 20 / secs).toFixed(0)} MiB/s`);
    }
  } else {
    const basics: string[] = [];
    for (let i = 0; i < 6000; i++)
      basics.push(`Basic ${Buffer.from(`bench:${await proxy.identity(i + 1)}`).toString('base64')}`);
    const r = await measureLatency({
      url: proxy.url,
      method: 'GET',
      path: '/token?service=registry.bench&scope=repository%3Abench%2Fapp%3Apull',
      headers: basics.map((b) => ({ authorization: b })),
      concurrency: 16,
      total: 6000,
      expectStatus: 200,
    });
    console.log(`/token x16: p50 ${r.p50.toFixed(2)} ms, ${r.rps.toFixed(0)}/s, errors ${r.errors}`);
  }
} finally {
  await proxy.stop();
  await registry.stop();
}
// On Node < 22.15 a launcher process stays in front of the serving one (src/cli/launch.ts) and writes
// a profile of its own: the serving process's is the largest.
const file = readdirSync(dir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
console.log(
  execFileSync(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'profile-summary.ts'), join(dir, file!)],
    { encoding: 'utf8' },
  ),
);
