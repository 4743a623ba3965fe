import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { MANIFEST_TYPE, seedManifest } from '../../support/seed.js';
import { buildConfig } from '../../../src/config/load.js';
import { containerdHostsToml } from '../../../src/cli/commands/mirror-config.js';

/**
 * Issue 12, containerd's mirror mode: containerd asks a mirror for `/v2/<name>/…?ns=<registry
 * host>` with no credentials. Two real Distribution registries behind prefixes `a/` and `b/`; `ns`
 * picks the upstream among the configured hosts, policy sees that upstream (anonymous rules scoped
 * by request.upstream), `ns` is never forwarded, and an unknown `ns` is refused, never dialed.
 * A third upstream, `hub/`, stands for docker.io (`registry:`) the way a pull-through cache does;
 * reg-b plays the cache, reached by its URL but chosen only by `ns=docker.io`.
 */
const POLICY = `
rules:
  - name: anonymous-pull-a
    actions: [pull]
    when: identity.issuerName == "anonymous" && request.upstream == "reg-a"
  - name: anonymous-pull-b-public
    actions: [pull]
    when: identity.issuerName == "anonymous" && request.upstream == "reg-b" && request.repository.startsWith("b/public/")
  - name: anonymous-pull-hub
    actions: [pull]
    when: identity.issuerName == "anonymous" && request.upstream == "hub"
`;

const run = promisify(execFile);

let dir: string;
let regA: Registry;
let regB: Registry;
let proxy: TestProxy;
let containerd: Containerd;

const hostOf = (r: Registry) => new URL(r.url).host;

/** Manifest answers the hub upstream gave, from the per-upstream metric. */
async function hubManifestAnswers(): Promise<number> {
  const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
  return Number(
    /^rap_upstream_response_seconds_count\{route="manifest",status="200",upstream="hub"\} (\d+)/m.exec(metrics)?.[1] ??
      0,
  );
}

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${proxy.url}${path}`, { headers: { accept: MANIFEST_TYPE } });
  return { status: res.statusCode, body: await res.body.text() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-mirror-'));
  regA = await startRegistry();
  regB = await startRegistry();
  await seedManifest(regA.url, 'team/app');
  await seedManifest(regB.url, 'public/app');
  await seedManifest(regB.url, 'private/app');
  await seedManifest(regB.url, 'library/app');
  proxy = await startProxy({
    policy: POLICY,
    config: {
      anonymous: true,
      upstreams: [
        { name: 'reg-a', prefix: 'a/', url: regA.url },
        { name: 'reg-b', prefix: 'b/', url: regB.url },
        { name: 'hub', prefix: 'hub/', url: regB.url, registry: 'docker.io' },
      ],
    },
  });
});

afterAll(async () => {
  await containerd?.stop();
  await proxy?.stop();
  await regA?.stop();
  await regB?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('containerd mirror mode (?ns=)', () => {
  it('ns picks the upstream whose host it names; the name is that upstream’s', async () => {
    expect((await get(`/v2/team/app/manifests/latest?ns=${hostOf(regA)}`)).status).toBe(200);
    expect((await get(`/v2/public/app/manifests/latest?ns=${hostOf(regB)}`)).status).toBe(200);
    // the other way round: b/team/app is not anonymous on reg-b; reg-a holds no public/app
    expect((await get(`/v2/team/app/manifests/latest?ns=${hostOf(regB)}`)).status).toBe(401);
    expect((await get(`/v2/public/app/manifests/latest?ns=${hostOf(regA)}`)).status).toBe(404);
  });

  it('`registry: docker.io` (a pull-through cache) is chosen by ns=docker.io, never by the host it is reached at', async () => {
    expect((await get('/v2/library/app/manifests/latest?ns=docker.io')).status).toBe(200);
    expect((await get('/v2/library/app/manifests/latest?ns=index.docker.io')).status).toBe(200);
    // reg-b's host is reg-b's, whose anonymous rule stops at b/public/: had it picked hub, this would be 200
    expect((await get(`/v2/library/app/manifests/latest?ns=${hostOf(regB)}`)).status).toBe(401);
  });

  it('a name that already carries the prefix (hosts.toml with override_path) is not prefixed twice', async () => {
    expect((await get(`/v2/a/team/app/manifests/latest?ns=${hostOf(regA)}`)).status).toBe(200);
  });

  it('policy sees the upstream ns chose: anonymous pulls of reg-b stop at b/public/', async () => {
    const denied = await get(`/v2/private/app/manifests/latest?ns=${hostOf(regB)}`);
    expect(denied.status).toBe(401);
    expect((await get('/v2/b/private/app/manifests/latest')).status).toBe(401);
  });

  it('an ns that names no configured upstream is refused with NAME_UNKNOWN, not routed by prefix', async () => {
    for (const ns of ['quay.io', '127.0.0.1:1']) {
      const res = await get(`/v2/a/team/app/manifests/latest?ns=${ns}`);
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body).errors[0].code).toBe('NAME_UNKNOWN');
    }
  });

  it('ns is never forwarded upstream', async () => {
    expect((await get(`/v2/team/app/manifests/latest?ns=${hostOf(regA)}`)).status).toBe(200);
    expect(regA.logs()).toContain('/v2/team/app/manifests/latest');
    expect(regA.logs()).not.toContain('ns=');
  });
});

describe('containerd (ctr) with the proxy as the mirror of a registry it names by host', () => {
  it('pulls <regA host>/team/img through the proxy, anonymously; the registry itself is never dialed', async () => {
    const image = buildOciImage(join(dir, 'img'), { layers: 1 });
    await run(
      requireTool('skopeo'),
      ['copy', '--dest-tls-verify=false', image.ref, `docker://${hostOf(regA)}/team/img:v1`],
      { timeout: 60_000 },
    );
    // hosts.toml: the server is a closed port, so only the mirror can serve the pull
    const hosts = join(dir, 'certs.d');
    mkdirSync(join(hosts, hostOf(regA)), { recursive: true });
    writeFileSync(
      join(hosts, hostOf(regA), 'hosts.toml'),
      `server = "http://127.0.0.1:1"\n\n[host."${proxy.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    containerd = await startContainerd();
    const args = [
      '--address',
      containerd.address,
      '--namespace',
      'rap-test',
      'images',
      'pull',
      '--snapshotter',
      'native',
    ];
    const ref = `${hostOf(regA)}/team/img:v1`;
    const { stdout, stderr } = await run(
      requireTool('ctr'),
      [...args, '--platform', 'linux/amd64', '--hosts-dir', hosts, ref],
      { timeout: 60_000 },
    );
    expect(`${stdout}${stderr}`).toMatch(/done/);
    expect(await containerd.images()).toContain(ref);
    // team/img matches no prefix: only ns=<reg-a host> can have sent it to reg-a, the only holder
    expect(proxy.logs.join('\n')).toMatch(/"path":"\/v2\/team\/img\/manifests\/v1","status":200/);
  });

  it('pulls with the hosts.toml mirror-config writes: the proxy is the only server, reached under its prefix', async () => {
    const image = buildOciImage(join(dir, 'gen-img'), { layers: 1 });
    await run(
      requireTool('skopeo'),
      ['copy', '--dest-tls-verify=false', image.ref, `docker://${hostOf(regA)}/team/gen:v1`],
      { timeout: 60_000 },
    );
    const generated = containerdHostsToml(
      buildConfig({ publicURL: proxy.url, upstreams: [{ name: 'reg-a', prefix: 'a/', url: regA.url }] }),
      join(dir, 'generated.d'),
    );
    const hosts = join(dir, 'generated.d');
    mkdirSync(join(hosts, hostOf(regA)), { recursive: true });
    writeFileSync(join(hosts, hostOf(regA), 'hosts.toml'), generated);
    containerd ??= await startContainerd();
    const args = [
      '--address',
      containerd.address,
      '--namespace',
      'rap-test',
      'images',
      'pull',
      '--snapshotter',
      'native',
    ];
    const ref = `${hostOf(regA)}/team/gen:v1`;
    const { stdout, stderr } = await run(
      requireTool('ctr'),
      [...args, '--platform', 'linux/amd64', '--hosts-dir', hosts, ref],
      { timeout: 60_000 },
    );
    expect(`${stdout}${stderr}`).toMatch(/done/);
    expect(await containerd.images()).toContain(ref);
    // asked for under the upstream's prefix (override_path), at the proxy
    expect(proxy.logs.join('\n')).toMatch(/"path":"\/v2\/a\/team\/gen\/manifests\/v1","status":200/);
  });

  it('with the hosts.toml mirror-config writes, a pull while the proxy is down fails: the registry is never dialed', async () => {
    const image = buildOciImage(join(dir, 'down-img'), { layers: 1 });
    await run(
      requireTool('skopeo'),
      ['copy', '--dest-tls-verify=false', image.ref, `docker://${hostOf(regA)}/team/down:v1`],
      { timeout: 60_000 },
    );
    // the proxy "down": its publicURL is a closed port
    const generated = containerdHostsToml(
      buildConfig({ publicURL: 'http://127.0.0.1:1', upstreams: [{ name: 'reg-a', prefix: 'a/', url: regA.url }] }),
    );
    const hosts = join(dir, 'down.d');
    mkdirSync(join(hosts, hostOf(regA)), { recursive: true });
    writeFileSync(join(hosts, hostOf(regA), 'hosts.toml'), generated);
    containerd ??= await startContainerd();
    const args = [
      '--address',
      containerd.address,
      '--namespace',
      'rap-test',
      'images',
      'pull',
      '--snapshotter',
      'native',
    ];
    const ref = `${hostOf(regA)}/team/down:v1`;
    const failed = await run(requireTool('ctr'), [...args, '--platform', 'linux/amd64', '--hosts-dir', hosts, ref], {
      timeout: 60_000,
    }).then(
      () => undefined,
      (err: Error & { stderr?: string }) => err,
    );
    expect(failed?.stderr).toMatch(/127\.0\.0\.1:1/);
    expect(await containerd.images()).not.toContain(ref);
    // skopeo pushed it; nothing else asked reg-a for it
    expect(
      regA
        .logs()
        .split('\n')
        .filter((l) => l.includes('/v2/team/down/') && l.includes('GET')),
    ).toEqual([]);
  });

  it('pulls docker.io/library/img through the proxy to the upstream standing for docker.io (registry:)', async () => {
    const image = buildOciImage(join(dir, 'hub-img'), { layers: 1 });
    await run(
      requireTool('skopeo'),
      ['copy', '--dest-tls-verify=false', image.ref, `docker://${hostOf(regB)}/library/img:v1`],
      { timeout: 60_000 },
    );
    // the server is a closed port: docker.io is never dialed, only the mirror can serve the pull
    const hosts = join(dir, 'certs.d');
    mkdirSync(join(hosts, 'docker.io'), { recursive: true });
    writeFileSync(
      join(hosts, 'docker.io', 'hosts.toml'),
      `server = "http://127.0.0.1:1"\n\n[host."${proxy.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    containerd ??= await startContainerd();
    const before = await hubManifestAnswers();
    const args = [
      '--address',
      containerd.address,
      '--namespace',
      'rap-test',
      'images',
      'pull',
      '--snapshotter',
      'native',
    ];
    const ref = 'docker.io/library/img:v1';
    const { stdout, stderr } = await run(
      requireTool('ctr'),
      [...args, '--platform', 'linux/amd64', '--hosts-dir', hosts, ref],
      { timeout: 60_000 },
    );
    expect(`${stdout}${stderr}`).toMatch(/done/);
    expect(await containerd.images()).toContain(ref);
    // ns=docker.io chose the hub upstream (reg-b's URL); reg-b's own rules would refuse library/img
    expect(await hubManifestAnswers()).toBeGreaterThan(before);
  });
});
