import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHttp } from '../../test/support/net.js';
import { requireTool } from '../../test/support/tools.js';

interface NginxBaseline {
  url: string;
  stop(): Promise<void>;
}

/**
 * A plain nginx `proxy_pass` in front of the upstream, configured to stream both ways exactly as a
 * fair baseline must: no request or response buffering, no body size limit, Host passed through.
 */
export async function startNginx(upstreamURL: string, workers = 1): Promise<NginxBaseline> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  const upstream = new URL(upstreamURL);
  const conf = `
worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  upstream registry { server ${upstream.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    chunked_transfer_encoding on;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 900;
      proxy_send_timeout 900;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(requireTool('nginx'), ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/v2/`, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`nginx did not start: ${(err as Error).message}\n${stderr}`);
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
