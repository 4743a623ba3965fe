import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { EngineUnavailable, runClient, startDockerdOrReason, type Dockerd } from '../../fixtures/dockerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startPodman, type Podman } from '../../fixtures/podman.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';
import { requireTool } from '../../support/tools.js';

/**
 * A 429 from limits.rules as each real client prints it (issue 23, CONTRACT §8): the message names
 * the limit and when it resets, never the key. Which requests can show it promptly differs:
 * - containers/image (skopeo 1.9, podman 4.3, buildah) retries a 429 five times, sleeping
 *   Retry-After capped at 60 s, before it prints the reason (~5 min for a long window; podman 4.3
 *   has no flag against it, skopeo's --retry-times is another loop) — except for a request with a
 *   body, which it never retries: a manifest PUT is refused and printed at once. So skopeo and
 *   podman are shown a push limit here.
 * - Docker and containerd do not retry a 429: they are shown a pull limit.
 */
const PULLS = 'pulls-per-identity';
const PUSHES = 'pushes-per-identity';
const LIMITS = {
  rules: [
    { name: PULLS, match: 'request.kind == "manifest" && request.method == "GET"', rate: { per: '1h', count: 1 } },
    { name: PUSHES, match: 'request.kind == "manifest" && request.method == "PUT"', rate: { per: '1h', count: 1 } },
  ],
};
/** The message, and how far each client's output shows it (the reset time changes by the second). */
const pulls = `toomanyrequests: rate limit "${PULLS}" of 1 per 1h (counted per identity) reached: resets in`;
const pushes = `toomanyrequests: rate limit "${PUSHES}" of 1 per 1h (counted per identity) reached: resets in`;

let stack: RegistryAndProxy;
let proxy: TestProxy;
let work: string;
let imageRef: string;
let skopeo: string;

/** An identity of its own for each client (the limit is per identity), its one pull spent already. */
async function spentIdentity(sub: string): Promise<string> {
  const id = await proxy.mintIdentity({ sub }, { ttl: 1800 });
  const answer = await proxy.requestToken(id, ['repository:team-a/app:pull']);
  const token = answer.body.token!;
  const first = await fetch(`${proxy.url}/v2/team-a/app/manifests/v1`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(first.status).toBe(200);
  expect(first.headers.get('ratelimit-limit')).toBe('1;w=3600');
  expect(first.headers.get('ratelimit-remaining')).toBe('0;w=3600');
  return id;
}

beforeAll(async () => {
  skopeo = requireTool('skopeo');
  stack = await startRegistryAndProxy({ config: { limits: LIMITS } });
  proxy = stack.proxy;
  work = mkdtempSync(join(tmpdir(), 'rap-limit-clients-'));
  imageRef = buildOciImage(join(work, 'image'), { layers: 1, layerBytes: 16 * 1024, tag: 'v1' }).ref;
  const seed = await proxy.mintIdentity({ sub: 'seed' }, { ttl: 1800 });
  const r = await runClient(skopeo, [
    'copy',
    '--dest-tls-verify=false',
    '--dest-creds',
    `x:${seed}`,
    imageRef,
    `docker://${proxy.host}/team-a/app:v1`,
  ]);
  expect(r.code, r.out).toBe(0);
  const archive = await runClient(skopeo, ['copy', imageRef, `docker-archive:${join(work, 'image.tar')}:local/app:v1`]);
  expect(archive.code, archive.out).toBe(0);
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('skopeo 1.9: a manifest PUT over the limit is printed at once', () => {
  it('prints toomanyrequests with the limit and its reset', async () => {
    const id = await proxy.mintIdentity({ sub: 'skopeo-job' }, { ttl: 1800 });
    const push = (tag: string) =>
      runClient(skopeo, [
        'copy',
        '--retry-times',
        '0',
        '--dest-tls-verify=false',
        '--dest-creds',
        `x:${id}`,
        imageRef,
        `docker://${proxy.host}/team-a/app:${tag}`,
      ]);
    expect((await push('s1')).code).toBe(0);
    const refused = await push('s2');
    expect(refused.code).not.toBe(0);
    // skopeo 1.9: level=fatal msg="writing manifest: uploading manifest s2 to <host>/team-a/app:
    // toomanyrequests: rate limit \"pushes-per-identity\" of 1 per 1h (counted per identity) reached: resets in 60m (…Z)"
    // (skopeo prints it as a logrus field: its quotes escaped)
    expect(refused.out).toContain(
      `uploading manifest s2 to ${proxy.host}/team-a/app: ${pushes.replaceAll('"', '\\"')}`,
    );
    expect(refused.out).not.toContain('skopeo-job');
  });
});

describe('podman 4.3: a manifest PUT over the limit is printed at once', () => {
  let podman: Podman;
  let unavailable: string | undefined;
  beforeAll(async () => {
    try {
      podman = await startPodman();
    } catch (err) {
      if (!(err instanceof EngineUnavailable) || process.env.CI === 'true') throw err;
      unavailable = `podman cannot run here: ${err.message}`;
      return;
    }
    const load = await podman.podman(['load', '-q', '-i', join(work, 'image.tar')]);
    expect(load.code, load.out).toBe(0);
  }, 120_000);
  afterAll(() => podman?.stop());

  it('prints toomanyrequests with the limit and its reset', async (ctx) => {
    if (unavailable) return ctx.skip(unavailable);
    const id = await proxy.mintIdentity({ sub: 'podman-job' }, { ttl: 1800 });
    const push = (tag: string) =>
      podman.podman([
        'push',
        '--tls-verify=false',
        '--creds',
        `x:${id}`,
        'local/app:v1',
        `${proxy.host}/team-a/app:${tag}`,
      ]);
    expect((await push('p1')).code).toBe(0);
    const refused = await push('p2');
    expect(refused.code).not.toBe(0);
    // podman 4.3 retries a failed push 3 times, 1 s apart (not a 429 loop), each time printing:
    // Error: writing manifest: uploading manifest p2 to <host>/team-a/app: toomanyrequests: rate limit …
    expect(refused.out).toContain(`uploading manifest p2 to ${proxy.host}/team-a/app: ${pushes}`);
  });
});

describe('Docker (CLI against dockerd): a pull over the limit', () => {
  let dockerd: Dockerd | string;
  beforeAll(async () => {
    dockerd = await startDockerdOrReason();
  }, 120_000);
  afterAll(async () => {
    if (typeof dockerd === 'object') await dockerd.stop();
  });

  it('prints toomanyrequests with the limit and its reset', async (ctx) => {
    if (typeof dockerd === 'string') return ctx.skip(dockerd);
    const id = await spentIdentity('docker-job');
    const config = dockerd.newConfigDir();
    const login = await dockerd.docker(['login', '-u', 'x', '--password-stdin', proxy.host], { config, input: id });
    expect(login.code, login.out).toBe(0);
    const pull = await dockerd.docker(['pull', `${proxy.host}/team-a/app:v1`], { config });
    expect(pull.code).not.toBe(0);
    // Error response from daemon: toomanyrequests: rate limit "pulls-per-identity" of 1 per 1h (counted per identity) reached: resets in 60m (…Z)
    expect(pull.out).toContain(pulls);
    expect(pull.out).not.toContain('docker-job');
  });
});

describe('containerd 1.6 (ctr): a pull over the limit', () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd();
  });
  afterAll(() => containerd?.stop());

  it('prints the status line, which names the limit and its reset', async () => {
    const id = await spentIdentity('ctr-job');
    const r = await runClient(
      requireTool('ctr'),
      [
        '--address',
        containerd.address,
        '--namespace',
        'rap-test',
        'images',
        'pull',
        '--plain-http',
        '--user',
        `x:${id}`,
        `${proxy.host}/team-a/app:v1`,
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.code).not.toBe(0);
    // ctr: failed to copy: … unexpected status code …/manifests/sha256:…: 429 Too Many Requests (rate limit
    // pulls-per-identity reached: resets in 60m) - Server message: toomanyrequests: rate limit … (its resolver's HEAD is free)
    expect(r.out).toMatch(new RegExp(`429 Too Many Requests \\(rate limit ${PULLS} reached: resets in \\d+m\\)`));
  });
});
