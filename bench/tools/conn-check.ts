import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { measureLatency } from '../lib/load.js';
import { startBenchProxy } from '../lib/proxy.js';
import { startBenchRegistry } from '../lib/registry.js';
const registry = await startBenchRegistry();
const proxy = await startBenchProxy(registry.url);
const data = Buffer.from('{}');
const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
const s = await request(`${registry.url}/v2/bench/app/blobs/uploads/`, { method: 'POST' });
await s.body.dump();
const u = new URL(s.headers.location as string, registry.url);
u.searchParams.set('digest', digest);
await (await request(u.toString(), { method: 'PUT', body: data })).body.dump();
const mt = 'application/vnd.oci.image.manifest.v1+json';
const m = JSON.stringify({ schemaVersion: 2, mediaType: mt, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 2 }, layers: [] });
await (await request(`${registry.url}/v2/bench/app/manifests/latest`, { method: 'PUT', body: m, headers: { 'content-type': mt } })).body.dump();
const headers = { accept: mt, authorization: `Bearer ${await proxy.registryToken(['repository:bench/app:pull'])}` };
const { Agent, request: hreq } = await import('node:http');
for (const [name, base, h] of [['direct', registry.url, { accept: mt }], ['proxy', proxy.url, headers]] as const) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => {
      const req = hreq(`${base}/v2/bench/app/manifests/latest`, { method: 'HEAD', agent, headers: h }, (res) => {
        if (i === 0) console.log(name, res.statusCode, JSON.stringify(res.headers));
        ports.push(req.socket!.localPort!);
        res.resume(); res.on('end', () => resolve());
      });
      req.end();
    });
  }
  console.log(name, ports);
}
const tw = (port: string) => Number(execFileSync('sh', ['-c', `ss -Htan state time-wait '( sport = :${port} or dport = :${port} )' | wc -l`], { encoding: 'utf8' }).trim());
const rp = new URL(registry.url).port, pp = new URL(proxy.url).port;
for (const [name, base, h] of [['direct', registry.url, { accept: mt }], ['proxy', proxy.url, headers]] as const) {
  const b = [tw(rp), tw(pp)];
  const r = await measureLatency({ url: base, method: 'HEAD', path: '/v2/bench/app/manifests/latest', headers: h, concurrency: 16, total: 2000, expectStatus: 200 });
  console.log(name, 'p50', r.p50.toFixed(2), 'rps', r.rps.toFixed(0), 'time-wait registry', tw(rp) - b[0]!, 'proxy', tw(pp) - b[1]!);
}
await proxy.stop(); await registry.stop();
