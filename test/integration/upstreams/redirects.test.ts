import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../support/net.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * Storage redirects (ECR → S3, Docker Hub → Cloudflare, Distribution's storage.redirect). The
 * upstream records what it is asked and answers blob GET/HEAD with a 307 to a second server, on
 * another loopback address, that serves the bytes and records the headers it got. Distribution's
 * filesystem driver cannot redirect, so the upstream here is the test's own.
 */

const blob = randomBytes(256 * 1024);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const seen: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
const aborted = { slow: false };
let storage: Server;
let upstream: Server;
let storageURL: string;
let passing: TestProxy;
let following: TestProxy;

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
}

/** The storage host: `/blob` serves the bytes; `/loop` redirects to itself; `/slow` sends a part and stalls; `/hang` never answers. */
function storageServer(): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push({ method: req.method ?? '', path, headers: req.headers });
    if (path === '/hang') return;
    if (path === '/loop') return void res.writeHead(307, { location: '/loop?again' }).end();
    if (path === '/slow') {
      req.socket.once('close', () => (aborted.slow = true));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) });
      return void res.write(blob.subarray(0, 64 * 1024));
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(blob.length),
      'set-cookie': 'storage=1',
    });
    res.end(req.method === 'HEAD' ? undefined : blob);
  });
}

/** The registry: blob routes of repository `team-a/<kind>` redirect to the storage's `<kind>` path. */
function upstreamServer(): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push({ method: req.method ?? '', path, headers: req.headers });
    const m = /^\/v2\/team-a\/(\w+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (!m) return void res.writeHead(path === '/v2/' ? 200 : 404, { 'content-type': 'application/json' }).end('{}');
    if (m[1] === 'direct')
      return void res
        .writeHead(200, { 'content-length': String(blob.length), 'docker-content-digest': m[2] })
        .end(blob);
    const location =
      m[1] === 'meta' ? 'http://169.254.169.254/latest/meta-data/' : `${storageURL}/${m[1]}?X-Amz-Signature=abc`;
    res.writeHead(307, { location, 'docker-content-digest': m[2], 'set-cookie': 'registry=1' }).end();
  });
}

beforeAll(async () => {
  const [storagePort, upstreamPort] = [await freePort(), await freePort()];
  storage = storageServer();
  // 127.0.0.2 is loopback too on Linux; another host than the upstream's in any case
  try {
    await listen(storage, '127.0.0.2', storagePort);
    storageURL = `http://127.0.0.2:${storagePort}`;
  } catch {
    storage = storageServer();
    await listen(storage, '127.0.0.1', storagePort);
    storageURL = `http://localhost:${storagePort}`;
  }
  upstream = upstreamServer();
  await listen(upstream, '127.0.0.1', upstreamPort);
  const dir = mkdtempSync(join(tmpdir(), 'rap-redirects-'));
  writeFileSync(join(dir, 'pw'), 's3cret\n');
  const up = {
    url: `http://127.0.0.1:${upstreamPort}`,
    auth: { type: 'basic', username: 'robot', passwordFile: join(dir, 'pw') },
    timeout: '5s',
  };
  passing = await startProxy({ config: { upstream: up } });
  following = await startProxy({ config: { upstream: { ...up, timeout: '1s', followRedirects: true } } });
});

afterAll(async () => {
  await passing?.stop();
  await following?.stop();
  for (const s of [upstream, storage]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
});

async function pull(proxy: TestProxy, repo: string, init: RequestInit = {}): Promise<Response> {
  const token = await proxy.registryToken([`repository:team-a/${repo}:pull`]);
  return fetch(`${proxy.url}/v2/team-a/${repo}/blobs/${digest}`, {
    redirect: 'manual',
    ...init,
    headers: { authorization: `Bearer ${token}` },
  });
}

const storageRequests = (path: string) => seen.filter((s) => s.path === path);

describe('storage redirects of blob GET/HEAD', () => {
  it('by default reach the client untouched: the 307 and its Location, for the client to follow', async () => {
    const r = await pull(passing, 'blob');
    expect(r.status).toBe(307);
    expect(r.headers.get('location')).toBe(`${storageURL}/blob?X-Amz-Signature=abc`);
    expect(r.headers.get('set-cookie')).toBeNull();
    await r.arrayBuffer();
  });

  it('with upstream.followRedirects are followed by the proxy, which streams the bytes and sends the storage no credentials', async () => {
    const before = storageRequests('/blob').length;
    const r = await pull(following, 'blob');
    expect(r.status).toBe(200);
    const body = Buffer.from(await r.arrayBuffer());
    expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(digest);
    expect(r.headers.get('docker-content-digest')).toBe(digest);
    expect(r.headers.get('set-cookie')).toBeNull();
    const [hit] = storageRequests('/blob').slice(before);
    expect(hit?.method).toBe('GET');
    expect(hit?.headers.authorization).toBeUndefined();
    expect(hit?.headers.cookie).toBeUndefined();
    // the upstream itself did get the proxy's own credentials
    expect(
      seen.some((s) => s.path.startsWith('/v2/team-a/blob/') && s.headers.authorization?.startsWith('Basic ')),
    ).toBe(true);
  });

  it('leave answers that are no redirect to the forwarder, as without the option', async () => {
    const r = await pull(following, 'direct');
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(blob)).toBe(true);
  });

  it('follow a HEAD with a HEAD', async () => {
    const before = storageRequests('/blob').length;
    const r = await pull(following, 'blob', { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(blob.length));
    expect(
      storageRequests('/blob')
        .slice(before)
        .map((s) => s.method),
    ).toEqual(['HEAD']);
  });

  it('answer 502 with an OCI body after too many hops', async () => {
    const r = await pull(following, 'loop');
    expect(r.status).toBe(502);
    const body = (await r.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]?.code).toBe('UNAVAILABLE');
    expect(body.errors[0]?.message).toMatch(/redirects/);
    expect(storageRequests('/loop').length).toBeLessThanOrEqual(3);
  });

  it('refuse a redirect to a link-local address (cloud metadata) without connecting', async () => {
    const r = await pull(following, 'meta');
    expect(r.status).toBe(502);
    const body = (await r.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]?.message).toMatch(/link-local/);
  });

  it('answer 504 when the storage host does not answer (the upstream idle timeout covers the follow)', async () => {
    const r = await pull(following, 'hang');
    expect(r.status).toBe(504);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNAVAILABLE');
  });

  it('abort the storage request when the client goes away mid-body', async () => {
    const token = await following.registryToken(['repository:team-a/slow:pull']);
    await new Promise<void>((resolve, reject) => {
      const req = request(
        `${following.url}/v2/team-a/slow/blobs/${digest}`,
        { headers: { authorization: `Bearer ${token}` } },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', (err) =>
        err.message.includes('aborted') || err.message.includes('socket hang up') ? undefined : reject(err),
      );
      req.end();
    });
    for (let i = 0; i < 100 && !aborted.slow; i++) await new Promise((r) => setTimeout(r, 50));
    expect(aborted.slow).toBe(true);
  });
});
