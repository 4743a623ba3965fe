import { spawn } from 'node:child_process';
import { streamingMallocEnv, withStreamingHeap } from '../../src/server/heap-flags.js';
import { freePort, waitForHttp } from '../../test/support/net.js';

interface NodePipe {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The floor for a proxy written in Node: a ten-line `node:http` pipe (request → upstream request,
 * `pipe` both ways, keep-alive agent), nothing else — no auth, no logging, no timeouts. It runs in
 * its own process like nginx and the proxy, so its CPU can be read from /proc and it does not share
 * an event loop with the benchmark. The CPU targets are stated relative to it.
 */
export async function startNodePipe(upstreamURL: string): Promise<NodePipe> {
  const upstream = new URL(upstreamURL);
  const port = await freePort();
  const source = `
const { Agent, createServer, request } = require('node:http');
const agent = new Agent({ keepAlive: true });
createServer((req, res) => {
  const up = request({ host: ${JSON.stringify(upstream.hostname)}, port: ${Number(upstream.port)}, path: req.url, method: req.method, headers: req.headers, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}).listen(${port}, '127.0.0.1');
`;
  return startNodeServer(source, port, '/v2/');
}

/**
 * Runs `source` (a node:http server listening on `port`) as the proxy's serving process runs
 * (src/server/heap-flags.ts), so a baseline differs from the proxy only in what it runs.
 */
export async function startNodeServer(source: string, port: number, readyPath = '/'): Promise<NodePipe> {
  const child = spawn(process.execPath, [...withStreamingHeap([]), '-e', source], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...streamingMallocEnv(process.env) },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}${readyPath}`, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
