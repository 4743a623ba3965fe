import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildProxy, type ChildProxy } from '../helpers/child-proxy.js';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/recording-upstream.js';
import { freePort } from '../support/net.js';
import { slowUpload, UPLOAD } from '../support/slow-upload.js';
import {
  eventually,
  onNewConnection,
  scrape,
  seriesValue,
  servingWorkers,
  spawnBuiltProxy,
  workerPids,
} from '../support/cluster.js';

/**
 * `workers: 2` under faults: a worker killed with SIGKILL is replaced while the other serves on;
 * SIGTERM to the primary (or Ctrl-C, SIGINT to the whole process group) drains every worker: the
 * upload in flight completes, new connections are refused, and the process exits 0 in time.
 */

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function connectError(url: string): Promise<string> {
  return fetch(`${url}/healthz`).then(
    (r) => `HTTP ${r.status}`,
    (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message,
  );
}

describe('a worker killed with SIGKILL', () => {
  let upstream: RecordingUpstream;
  let proxy: ChildProxy;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startChildProxy(upstream.url, { workers: 2, logLevel: 'info' });
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it('is replaced in its slot while the other worker serves on', async () => {
    const token = await proxy.registryToken(['repository:team/app:pull']);
    const pull = () =>
      onNewConnection(`${proxy.url}/v2/team/app/manifests/latest`, { headers: { authorization: `Bearer ${token}` } });
    const before = await servingWorkers(proxy.url, 2);
    expect(before.size).toBe(2);
    const victim = before.get('1')!;
    process.kill(victim, 'SIGKILL');
    // Service goes on: every connection from now on is handed to a live worker.
    await eventually(() => !alive(victim), 5000);
    const during = await Promise.all(Array.from({ length: 6 }, () => pull()));
    expect(during.map((a) => a.status)).toEqual(Array(6).fill(200));
    let after = new Map<string, number>();
    expect(
      await eventually(async () => {
        after = workerPids(await scrape(proxy.url));
        return after.size === 2 && after.get('1') !== victim;
      }, 15_000),
    ).toBe(true);
    expect(after.get('2')).toBe(before.get('2'));
    expect(seriesValue(await scrape(proxy.url), 'rap_worker_restarts_total')).toBe(1);
    // The replacement signs with the same key: the token issued before still works on every worker.
    const again = [];
    for (let i = 0; i < 6; i++) again.push((await pull()).status);
    expect(again).toEqual(Array(6).fill(200));
    expect(proxy.output()).toMatch(
      /"worker":1,"pid":\d+,"code":null,"signal":"SIGKILL","restartInMs":100,"msg":"worker exited unexpectedly: restarting it"/,
    );
  }, 60_000);
});

describe('SIGTERM to the primary', () => {
  it('drains every worker: the upload in flight completes, new connections are refused, exit 0 within the grace', async () => {
    const upstream = await startRecordingUpstream();
    upstream.handle((_req, res) => res.writeHead(202, { location: UPLOAD }).end());
    const proxy = await startChildProxy(upstream.url, { workers: 2, shutdownGrace: '4s', logLevel: 'info' });
    try {
      const pids = [...(await servingWorkers(proxy.url, 2)).values()];
      const token = await proxy.registryToken(['repository:team/app:pull,push']);
      const upload = slowUpload(proxy.url, { authorization: `Bearer ${token}` });
      await new Promise((r) => setTimeout(r, 300));
      const killedAt = Date.now();
      const exited = new Promise<number | null>((r) => proxy.child.once('exit', (code) => r(code)));
      proxy.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      expect(await connectError(proxy.url)).toBe('ECONNREFUSED');
      expect(await upload).toBe(202);
      expect(await exited).toBe(0);
      expect(Date.now() - killedAt).toBeLessThan(4000);
      expect(pids.filter(alive)).toEqual([]);
      expect(proxy.output()).toMatch(/shutting down: workers finish in-flight requests/);
      expect(proxy.output().match(/"signal":"primary: drain"/g)).toHaveLength(2);
    } finally {
      await proxy.stop('SIGKILL');
      await upstream.stop();
    }
  }, 30_000);
});

describe('Ctrl-C (SIGINT to the process group)', () => {
  it('drains like SIGTERM: workers leave the signal to the primary', async () => {
    const upstream = await startRecordingUpstream();
    upstream.handle((_req, res) => res.writeHead(202, { location: UPLOAD }).end());
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dir = mkdtempSync(join(tmpdir(), 'rap-sigint-'));
    writeFileSync(join(dir, 'policy.yaml'), "rules: [{name: all, actions: [pull, push], when: 'true'}]\n");
    writeFileSync(
      join(dir, 'rap.yaml'),
      `listen: 127.0.0.1:${port}\nupstream: {url: '${upstream.url}'}\npolicies: ${join(dir, 'policy.yaml')}\nanonymous: true\nworkers: 2\nshutdownGrace: 4s\nlogLevel: info\n`,
    );
    const proxy = await spawnBuiltProxy(['--config', join(dir, 'rap.yaml')], url, { detached: true });
    try {
      const pids = [...(await servingWorkers(url, 2)).values()];
      const upload = slowUpload(url);
      await new Promise((r) => setTimeout(r, 300));
      const killedAt = Date.now();
      process.kill(-proxy.child.pid!, 'SIGINT');
      await new Promise((r) => setTimeout(r, 200));
      expect(await connectError(url)).toBe('ECONNREFUSED');
      expect(await upload).toBe(202);
      expect(await proxy.exited).toBe(0);
      expect(Date.now() - killedAt).toBeLessThan(4000);
      expect(pids.filter(alive)).toEqual([]);
      // Drained on the primary's word, not killed by the signal, and never restarted.
      expect(proxy.output().match(/"signal":"primary: drain"/g)).toHaveLength(2);
      expect(proxy.output()).not.toMatch(/exited unexpectedly/);
    } finally {
      proxy.kill();
      await upstream.stop();
    }
  }, 30_000);
});
