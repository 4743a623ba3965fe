import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHttp } from '../../test/support/net.js';
import { requireTool } from '../../test/support/tools.js';

interface Nginx {
  url: string;
  /** The master; the worker that does the work is its child (measure the tree, see cpu.ts). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * How the nginx baselines proxy. `unbuffered` streams both ways exactly as the proxy does (no
 * request or response buffering): the like-for-like baseline. `tuned` is nginx as one would deploy
 * it for throughput (the reference): response buffering on in 256 KiB buffers held in
 * memory only (no temp file), request bodies still streamed (buffering a 1 GiB push to disk is not
 * a configuration anyone runs) but read in 256 KiB buffers.
 */
type NginxMode = 'unbuffered' | 'tuned';

const BUFFERING: Record<NginxMode, string> = {
  unbuffered: 'proxy_buffering off;',
  tuned: `proxy_buffering on;
      proxy_buffer_size 256k;
      proxy_buffers 8 256k;
      proxy_busy_buffers_size 512k;
      proxy_max_temp_file_size 0;
      client_body_buffer_size 256k;`,
};

async function runNginx(name: string, http: (port: number, dir: string) => string, workers = 1): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), `rap-nginx-${name}-`));
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${dir}/tmp/${t};`)
    .join('\n  ');
  const conf = `
worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  ${temp}
  ${http(port, dir)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(requireTool('nginx'), ['-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/v2/`, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`nginx (${name}) did not start: ${(err as Error).message}\n${stderr}`);
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** nginx `proxy_pass` in front of the upstream: no body size limit, Host passed through, upstream keep-alive. */
export function startNginx(upstreamURL: string, mode: NginxMode = 'unbuffered', workers = 1): Promise<Nginx> {
  const upstream = new URL(upstreamURL);
  return runNginx(
    mode,
    (port) => `
  upstream registry { server ${upstream.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      ${BUFFERING[mode]}
      proxy_read_timeout 900;
      proxy_send_timeout 900;
    }
  }`,
    workers,
  );
}

/** The manifest the instant upstream serves for every repository and reference. */
const INSTANT_MANIFEST = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 },
  layers: [],
});

/**
 * An upstream that answers instantly, so that the proxy in front of it is the bottleneck: nginx
 * answering every manifest request from its configuration — `return 200` with the headers a
 * registry sends (Docker-Content-Digest, Content-Type, Content-Length; HEAD gets no body) — which
 * costs less CPU per request than anything else that speaks HTTP here. `/v2/` answers 200 for the
 * proxy's readiness probe.
 */
export function startInstantUpstream(): Promise<Nginx> {
  const digest = `sha256:${createHash('sha256').update(INSTANT_MANIFEST).digest('hex')}`;
  return runNginx(
    'instant',
    (port) => `
  types { }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    add_header Docker-Distribution-Api-Version registry/2.0 always;
    location = /v2/ { default_type application/json; return 200 '{}'; }
    location ~ ^/v2/.+/manifests/[^/]+$ {
      default_type application/vnd.oci.image.manifest.v1+json;
      add_header Docker-Content-Digest ${digest} always;
      add_header Docker-Distribution-Api-Version registry/2.0 always;
      return 200 '${INSTANT_MANIFEST}';
    }
    location / { return 404; }
  }`,
  );
}
