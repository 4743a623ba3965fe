import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildProxy, type ChildProxy } from '../../helpers/child-proxy.js';
import { runBuiltBin } from '../../helpers/cli.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../fixtures/recording-upstream.js';
import { stringify } from 'yaml';
import { ciIssuer, TEST_ISSUER } from '../../support/issuer.js';
import { freePort } from '../../support/net.js';
import { basicAuth } from '../../support/token.js';
import {
  onNewConnection,
  parentPid,
  scrape,
  seriesValue,
  servingWorkers,
  spawnBuiltProxy,
  workerConnections,
  workerPids,
} from '../../support/cluster.js';

/**
 * `workers: 2` as a real process tree (the built bin): two worker processes share the socket, sign
 * with one ephemeral key, and /metrics is the sum of both. Config problems exit 2, once.
 */

const PROBLEM = 'must be a whole number from 1 to 1024, or auto';

/** A config file listening on `port`, trusting the test issuer from a JWKS file (no network), with `policy`. */
async function configFile(port: number, policy: string, extra: Record<string, unknown> = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rap-workers-'));
  (await ciIssuer()).writeJwks(join(dir, 'jwks.json'));
  writeFileSync(join(dir, 'policy.yaml'), policy);
  const issuers = [{ name: 'ci', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }];
  writeFileSync(
    join(dir, 'rap.yaml'),
    stringify({
      listen: `127.0.0.1:${port}`,
      upstream: { url: 'http://127.0.0.1:9' },
      issuers,
      policies: join(dir, 'policy.yaml'),
      logLevel: 'info',
      ...extra,
    }),
  );
  return join(dir, 'rap.yaml');
}

describe('workers: 2', () => {
  let upstream: RecordingUpstream;
  let proxy: ChildProxy;
  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    proxy = await startChildProxy(upstream.url, { workers: 2 });
    await servingWorkers(proxy.url, 2);
  });
  afterAll(async () => {
    await proxy?.stop();
    await upstream?.stop();
  });

  it('serves from two worker processes, children of the one serving the port (the one started, or its re-executed self)', async () => {
    for (let i = 0; i < 8; i++) expect((await onNewConnection(`${proxy.url}/healthz`)).status).toBe(200);
    const text = await scrape(proxy.url);
    const pids = workerPids(text);
    expect([...pids.keys()].sort()).toEqual(['1', '2']);
    expect(new Set(pids.values()).size).toBe(2);
    // re-executed in place (process.execve, Node >= 22.15) or not at all (RAP_STREAMING_SETTINGS set):
    // the pid started serves; else (Node 20) the one started supervises the serving child
    const inPlace =
      typeof (process as { execve?: unknown }).execve === 'function' ||
      process.env.RAP_STREAMING_SETTINGS !== undefined;
    expect(inPlace ? proxy.pid : parentPid(proxy.pid)).toBe(proxy.child.pid);
    for (const pid of pids.values()) {
      expect(pid).not.toBe(proxy.pid);
      expect(parentPid(pid)).toBe(proxy.pid);
    }
    // Handed out round robin: both served some of the 9 connections.
    const served = workerConnections(text);
    expect(served.get('1')).toBeGreaterThan(0);
    expect(served.get('2')).toBeGreaterThan(0);
  });

  it('verifies on one worker the tokens another issued (one shared ephemeral key)', async () => {
    const identity = await (await ciIssuer()).mint({ sub: 'child' });
    const before = workerConnections(await scrape(proxy.url));
    const jwks = new Set<string>();
    for (let i = 0; i < 4; i++) jwks.add((await onNewConnection(`${proxy.url}/.well-known/jwks.json`)).body);
    expect(jwks.size).toBe(1);
    expect(JSON.parse([...jwks][0]!).keys).toHaveLength(1);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const answer = await onNewConnection(`${proxy.url}/token?service=registry.test&scope=repository:team/app:pull`, {
        headers: { authorization: basicAuth(identity) },
      });
      expect(answer.status).toBe(200);
      const { token } = JSON.parse(answer.body) as { token: string };
      // Each token on four connections of its own: whichever worker issued it, the others see it too.
      for (let j = 0; j < 4; j++) {
        statuses.push(
          (
            await onNewConnection(`${proxy.url}/v2/team/app/manifests/latest`, {
              headers: { authorization: `Bearer ${token}` },
            })
          ).status,
        );
      }
    }
    expect(statuses).toEqual(Array(16).fill(200));
    const after = workerConnections(await scrape(proxy.url));
    for (const slot of ['1', '2']) expect(after.get(slot)! - before.get(slot)!).toBeGreaterThanOrEqual(4);
  });

  it('answers /metrics with the sum over the workers', async () => {
    const series = 'rap_http_requests_total{route="healthz",method="GET",status="200"}';
    const before = await scrape(proxy.url);
    for (let i = 0; i < 10; i++) await onNewConnection(`${proxy.url}/healthz`);
    const after = await scrape(proxy.url);
    expect(seriesValue(after, series) - seriesValue(before, series)).toBe(10);
    // ...counted by both workers
    for (const slot of ['1', '2'])
      expect(workerConnections(after).get(slot)! - workerConnections(before).get(slot)!).toBeGreaterThanOrEqual(2);
    // Gauges sum too: the scrape being answered is the one request in flight.
    expect(seriesValue(after, 'rap_http_requests_in_flight')).toBe(1);
    expect(seriesValue(after, 'rap_worker_restarts_total')).toBe(0);
    // The shared ephemeral key was announced by the primary only.
    expect(proxy.output().match(/NO SIGNING KEY CONFIGURED/g)).toHaveLength(1);
  });
});

/**
 * What `auto` should mean here, derived without src/server/cpus.ts: the CPUs there are, within the
 * cgroup's CPU quota rounded up (v2 `cpu.max` of our own cgroup or the mount's root, else v1 cfs).
 */
function expectedAutoWorkers(): number {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const own = /^0::(\/\S*)$/m.exec(read('/proc/self/cgroup') ?? '')?.[1];
  const v2 = (own && own !== '/' ? read(`/sys/fs/cgroup${own}/cpu.max`) : undefined) ?? read('/sys/fs/cgroup/cpu.max');
  const v1 = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find(
    (dir) => read(`${dir}/cpu.cfs_quota_us`) !== undefined,
  );
  const [quota, period = '100000'] = v2
    ? v2.split(/\s+/)
    : v1
      ? [read(`${v1}/cpu.cfs_quota_us`), read(`${v1}/cpu.cfs_period_us`)]
      : [];
  const cpus = availableParallelism();
  if (quota === undefined || quota === 'max' || quota === '-1') return cpus;
  return Math.min(cpus, Math.max(1, Math.ceil(Number(quota) / Number(period))));
}

describe('--workers auto', () => {
  it('starts one worker per CPU, within the cgroup quota', async () => {
    const expected = expectedAutoWorkers();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proxy = await spawnBuiltProxy(['--workers', 'auto', '--config', await configFile(port, 'rules: []\n')], url);
    try {
      // 1 means no cluster at all: the process serves itself and there are no worker series.
      if (expected === 1) expect(workerPids(await scrape(url)).size).toBe(0);
      else expect((await servingWorkers(url, expected)).size).toBe(expected);
      if (expected > 1) expect(proxy.output()).toContain(`"msg":"starting ${expected} workers"`);
    } finally {
      proxy.child.kill('SIGTERM');
      expect(await proxy.exited).toBe(0);
    }
  });
});

describe('bad worker settings', () => {
  it.each(['0', '-1', 'many'])('--workers %s exits 2 naming the flag', async (value) => {
    const r = await runBuiltBin('registry-auth-proxy', [
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--upstream',
      'http://127.0.0.1:9',
      '--workers',
      value,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`config error: <flags>: --workers: ${PROBLEM}\n`);
  });

  it.each(['0', '-1', 'many'])('workers: %s in the file exits 2 naming the key', async (value) => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-workers-'));
    writeFileSync(join(dir, 'rap.yaml'), `listen: 127.0.0.1:0\nworkers: ${value}\n`);
    const r = await runBuiltBin('registry-auth-proxy', ['serve', '--config', join(dir, 'rap.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`config error: ${join(dir, 'rap.yaml')}: workers: ${PROBLEM}\n`);
  });

  it('checks the config once, in the primary: a broken policy exits 2 with one message', async () => {
    const config = await configFile(await freePort(), 'rules: [{name: broken, actions: [pull], when: "identity.("}]\n');
    const r = await runBuiltBin('registry-auth-proxy', ['serve', '--workers', '2', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.stderr.match(/policy error/g)).toHaveLength(1);
    expect(r.stderr).not.toMatch(/starting 2 workers[\s\S]*listening/);
  });

  it('stops the whole process with the code of a worker that cannot start (no restarts)', async () => {
    const config = await configFile(await freePort(), 'rules: []\n', {
      workers: 2,
      tls: { certFile: '/nonexistent/tls.crt', keyFile: '/nonexistent/tls.key' },
    });
    const r = await runBuiltBin('registry-auth-proxy', ['serve', '--config', config]);
    // a TLS file only a worker reads: the worker's config error (exit 2) is the whole process's
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `config error: ${config}: tls.certFile: /nonexistent/tls.crt does not exist: fix the path`,
    );
    expect(r.stderr).toContain('worker failed to start: stopping');
    expect(r.stderr).not.toContain('restarting');
  });

  it('refuses --dev with more than one worker', async () => {
    const r = await runBuiltBin('registry-auth-proxy', [
      'serve',
      '--dev',
      '--workers',
      '2',
      '--state-dir',
      mkdtempSync(join(tmpdir(), 'rap-dev-')),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('--dev runs one process: workers must be 1, not 2\n');
  });
});
