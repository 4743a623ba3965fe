/**
 * Where does pull throughput go? The same 512 MiB blob pulled directly, through nginx, through a
 * ten-line Node pipe proxy (http.request + pipe, keep-alive agent), and through registry-auth-proxy,
 * interleaved three times. If the bare Node pipe is no faster than the proxy, the ceiling is Node's
 * socket-to-socket copy on this machine, not the proxy's own work.
 */
import { Agent, createServer, request } from 'node:http';
import { blobDigest, pullBlob, pushBlob } from '../../test/support/blob.js';
import { startNginx } from '../lib/nginx.js';
import { startBenchProxy } from '../lib/proxy.js';
import { startBenchRegistry } from '../lib/registry.js';

const size = 512 * 2 ** 20;
const registry = await startBenchRegistry();
const digest = await blobDigest(size, 5);
await pushBlob(registry.url, 'bench/big', size, digest, {}, 5);
const nginx = await startNginx(registry.url, 1);
const proxy = await startBenchProxy(registry.url);
const agent = new Agent({ keepAlive: true });
const upstream = new URL(registry.url);
const bare = createServer((req, res) => {
  const up = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent }, (ur) => {
    res.writeHead(ur.statusCode!, ur.headers);
    ur.pipe(res);
  });
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
// share the client's event loop, which is not how a proxy runs)
const { spawn } = await import('node:child_process');
const { freePort, waitForHttp } = await import('../../test/support/net.js');
const bareChildPort = await freePort();
const bareChild = spawn(
  process.execPath,
  [
    '-e',
    `
const { Agent, createServer, request } = require('node:http');
const agent = new Agent({ keepAlive: true });
createServer((req, res) => {
  const up = request({ host: '127.0.0.1', port: ${upstream.port}, path: req.url, method: req.method, headers: req.headers, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  req.pipe(up);
}).listen(${bareChildPort}, '127.0.0.1');
`,
  ],
  { stdio: 'ignore' },
);
await waitForHttp(`http://127.0.0.1:${bareChildPort}/v2/`, 10_000);
const headers = { authorization: `Bearer ${await proxy.registryToken(['repository:bench/big:pull'])}` };
const targets: [string, string, Record<string, string>][] = [
  ['direct', registry.url, {}],
  ['nginx', nginx.url, {}],
  ['node pipe', bareURL, {}],
  ['pipe+ALS', alsURL, {}],
  ['pipe child', `http://127.0.0.1:${bareChildPort}`, {}],
  ['http-proxy', hpURL, {}],
  ['proxy', proxy.url, headers],
];
const results = new Map<string, number[]>();
for (let rep = 0; rep < 3; rep++) {
  for (const [name, url, h] of targets) {
    const secs = await pullBlob(url, 'bench/big', digest, size, h);
    results.set(name, [...(results.get(name) ?? []), size / 2 ** 20 / secs]);
  }
}
for (const [name, xs] of results) console.log(`${name.padEnd(10)} ${xs.map((x) => x.toFixed(0)).join(', ')} MiB/s`);
bare.close();
bareChild.kill();
hpServer.close();
alsServer.close();
agent.destroy();
await proxy.stop();
await nginx.stop();
await registry.stop();
