/**
 * Where does pull throughput go? The same 512 MiB blob pulled directly, through nginx (unbuffered and
 * tuned), through a ten-line Node pipe proxy (http.request + pipe, keep-alive agent; in process and
 * as bench/lib/pipe.ts's child), through http-proxy-3, and through registry-auth-proxy,
 * interleaved three times. If the bare Node pipe is no faster than the proxy, the ceiling is Node's
 * socket-to-socket copy on this machine, not the proxy's own work.
 */
import { Agent, createServer, request } from 'node:http';
import { blobDigest, pullBlob, pushBlob } from '../../test/support/blob.js';
import { withCpu } from '../lib/cpu.js';
import { startNginx } from '../lib/nginx.js';
import { startNodePipe } from '../lib/pipe.js';
import { startBenchProxy } from '../lib/proxy.js';
import { startBenchRegistry } from '../lib/registry.js';

const size = 512 * 2 ** 20;
const registry = await startBenchRegistry();
const digest = await blobDigest(size, 5);
await pushBlob(registry.url, 'bench/big', size, digest, {}, 5);
const nginx = await startNginx(registry.url);
const proxy = await startBenchProxy(registry.url);
const agent = new Agent({ keepAlive: true });
const upstream = new URL(registry.url);
const bare = createServer((req, res) => {
  const up = request(
    { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent },
    (ur) => {
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    },
  );
  req.pipe(up);
});
await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
const bareURL = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;
// the same plus http-proxy-3, and the same plus an AsyncLocalStorage context per request
const { createProxyServer } = await import('http-proxy-3');
const hp = createProxyServer({ target: registry.url, agent: new Agent({ keepAlive: true }), changeOrigin: true });
const hpServer = createServer((req, res) => hp.web(req, res, {}, () => res.destroy()));
await new Promise<void>((r) => hpServer.listen(0, '127.0.0.1', r));
const hpURL = `http://127.0.0.1:${(hpServer.address() as { port: number }).port}`;
const { AsyncLocalStorage } = await import('node:async_hooks');
const als = new AsyncLocalStorage<{ id: number }>();
let n = 0;
const alsServer = createServer((req, res) => als.run({ id: n++ }, () => bare.emit('request', req, res)));
await new Promise<void>((r) => alsServer.listen(0, '127.0.0.1', r));
const alsURL = `http://127.0.0.1:${(alsServer.address() as { port: number }).port}`;
// the bare pipe again, but in its own process like nginx and the proxy (the in-process variants
// share the client's event loop, which is not how a proxy runs): the benchmark's baseline
const pipeChild = await startNodePipe(registry.url);
const tuned = await startNginx(registry.url, 'tuned');
const headers = { authorization: `Bearer ${await proxy.registryToken(['repository:bench/big:pull'])}` };
// [name, url, headers, pid of the serving process tree when it has its own (its CPU is read from /proc)]
const targets: [string, string, Record<string, string>, number?][] = [
  ['direct', registry.url, {}, registry.pid],
  ['nginx', nginx.url, {}, nginx.pid],
  ['node pipe', bareURL, {}],
  ['pipe+ALS', alsURL, {}],
  ['nginx tuned', tuned.url, {}, tuned.pid],
  ['pipe child', pipeChild.url, {}, pipeChild.pid],
  ['http-proxy', hpURL, {}],
  ['proxy', proxy.url, headers, proxy.pid],
];
const results = new Map<string, string[]>();
for (let rep = 0; rep < 3; rep++) {
  for (const [name, url, h, pid] of targets) {
    const { value: secs, cpu } = await withCpu(pid ?? process.pid, () => pullBlob(url, 'bench/big', digest, size, h));
    const cpuNote = pid ? ` (${(cpu / (size / 2 ** 30)).toFixed(2)} CPU s/GiB)` : '';
    results.set(name, [...(results.get(name) ?? []), `${(size / 2 ** 20 / secs).toFixed(0)}${cpuNote}`]);
  }
}
for (const [name, xs] of results) console.log(`${name.padEnd(11)} ${xs.join(', ')} MiB/s`);
bare.close();
await pipeChild.stop();
await tuned.stop();
hpServer.close();
alsServer.close();
agent.destroy();
await proxy.stop();
await nginx.stop();
await registry.stop();
