import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { EngineUnavailable, runClient, startDockerdOrReason, type Dockerd } from '../../fixtures/dockerd.js';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { startPodman, type Podman } from '../../fixtures/podman.js';
import type { Registry } from '../../fixtures/registry.js';
import { requireTool } from '../../support/tools.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * Denials that explain themselves, as each real client prints them (issue 10). A scope the policy
 * refused at /token is answered at /v2/ with 403 DENIED whose message names the identity, the
 * refused actions and repository, the reason, and `registry-auth-proxy policy test`; the status
 * line repeats it for containerd, which prints nothing else. The upstream never sees the request.
 */
const POLICY = `
rules:
  - name: ci-owns-team-a
    actions: [pull, push]
    when: identity.issuerName == "ci" && request.repository.startsWith("team-a/")
  - name: everyone-pulls-shared
    actions: [pull]
    when: request.repository.startsWith("shared/")
  - name: ci-manages-releases
    actions: ["*", pull, push, delete]
    when: identity.issuerName == "ci" && request.repository.startsWith("releases/")
  - name: nobody-deletes-releases
    effect: deny
    actions: [delete]
    when: request.repository.startsWith("releases/")
`;
const WHO = 'issuer ci, subject job-42 was refused';
const CHECK = 'registry-auth-proxy policy test --issuer-name ci';
const PUSH_SHARED = `${WHO} push on repository shared/base: no rule grants push`;
const PULL_TEAM_B = `${WHO} pull on repository team-b/app: no rule grants pull`;
const DELETE_RELEASES = `${WHO} * (every action) on repository releases/app: denied by rule nobody-deletes-releases`;

let stack: RegistryAndProxy;
let registry: Registry;
let proxy: TestProxy;
let work: string;
let image: OciImage;
let id: string;
let skopeo: string;

async function sk(args: string[]) {
  return runClient(skopeo, args, { timeoutMs: 60_000 });
}

/** A registry token for `scopes`, as a client gets it from /token. */
async function tokenFor(p: TestProxy, scopes: string[]): Promise<string> {
  const res = await p.requestToken(id, scopes);
  expect(res.status).toBe(200);
  return res.body.token!;
}

/** Nothing of a refused request reached the upstream. */
function upstreamSaw(fragment: string): boolean {
  return registry.logs().includes(fragment);
}

beforeAll(async () => {
  skopeo = requireTool('skopeo');
  stack = await startRegistryAndProxy({ policy: POLICY });
  ({ registry, proxy } = stack);
  work = mkdtempSync(join(tmpdir(), 'rap-denials-'));
  image = buildOciImage(join(work, 'image'), { layers: 1, layerBytes: 16 * 1024, tag: 'v1' });
  id = await proxy.mintIdentity({}, { ttl: 1800 });
  for (const repo of ['team-a/app', 'releases/app']) {
    const r = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/${repo}:v1`,
    ]);
    expect(r.code, r.out).toBe(0);
  }
  // what Docker and podman load: the same image as a docker-archive, no registry involved
  const r = await sk(['copy', image.ref, `docker-archive:${join(work, 'image.tar')}:local/app:v1`]);
  expect(r.code, r.out).toBe(0);
});
afterAll(async () => {
  await stack?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('skopeo 1.9 (containers/image 5.23)', () => {
  it('denied push (pull allowed, push not): names the identity, the repository and "no rule grants push"', async () => {
    const r = await sk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/shared/base:v1`,
    ]);
    expect(r.code).not.toBe(0);
    // skopeo prints: writing blob: initiating layer upload to /v2/shared/base/blobs/uploads/ in
    // 127.0.0.1:PORT: denied: issuer ci, subject job-42 was refused push on repository shared/base:
    // no rule grants push. Check with: registry-auth-proxy policy test --issuer-name ci --scope ...
    expect(r.out).toContain(
      `denied: ${PUSH_SHARED}. Check with: ${CHECK} --scope 'repository:shared/base:push' --claims <identity token>`,
    );
    expect(upstreamSaw('/v2/shared/base/blobs/uploads')).toBe(false);
  });

  it('denied pull (nothing granted)', async () => {
    const r = await sk([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${id}`,
      `docker://${proxy.host}/team-b/app:v1`,
      `oci:${join(work, 'pulled')}:v1`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`reading manifest v1 in ${proxy.host}/team-b/app: denied: ${PULL_TEAM_B}.`);
    expect(upstreamSaw('/v2/team-b/app/manifests')).toBe(false);
  });

  it('denied delete: skopeo asks for `*`, a deny rule removes delete, and the rule is named', async () => {
    const r = await sk([
      'delete',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `docker://${proxy.host}/releases/app:v1`,
    ]);
    expect(r.code).not.toBe(0);
    // skopeo prints the raw body and the status line: both carry the reason
    expect(r.out).toContain(`Failed to delete ${proxy.host}/releases/app:v1`);
    expect(r.out).toContain(DELETE_RELEASES);
    expect(r.out).toContain(`(403 Forbidden: ${DELETE_RELEASES}`);
    expect(await registry.repositories()).toContain('releases/app');
  });

  it('denied tag listing: a 403, never "invalid username/password" (the credentials are fine)', async () => {
    const r = await sk(['list-tags', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxy.host}/team-b/app`]);
    expect(r.code).not.toBe(0);
    // containers/image 5.23 prints any status but 401 on a tag listing as http.StatusText, dropping
    // the body and the status line: "fetching tags list: invalid status code from registry 403
    // (Forbidden)". A 401 would print the reason, but after "invalid username/password". Newer
    // containers/image print the status line, which carries the reason.
    expect(r.out).toContain('fetching tags list: invalid status code from registry 403 (Forbidden)');
    expect(r.out).not.toMatch(/invalid username\/password/);
    // the reason is in the answer all the same
    const res = await fetch(`${proxy.url}/v2/team-b/app/tags/list`, {
      headers: { authorization: `Bearer ${await tokenFor(proxy, ['repository:team-b/app:pull'])}` },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]).toMatchObject({
      code: 'DENIED',
      message: expect.stringContaining(PULL_TEAM_B),
    });
  });
});

describe('HTTP: the catalog, a scope never asked for, and the audit line', () => {
  it('denied catalog: 403 with the reason; a token that never asked for the catalog gets the challenge', async () => {
    const res = await fetch(`${proxy.url}/v2/_catalog`, {
      headers: { authorization: `Bearer ${await tokenFor(proxy, ['registry:catalog:*'])}` },
    });
    expect(res.status).toBe(403);
    expect(res.statusText).toBe(
      `Forbidden: ${WHO} * (every action) on registry catalog: no rule grants *. Check with: ${CHECK} --scope 'registry:catalog:*' --claims <identity token>`,
    );
    expect(res.headers.get('www-authenticate')).toBeNull();
    const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.detail).toEqual({
      issuerName: 'ci',
      subject: 'job-42',
      refused: [{ type: 'registry', name: 'catalog', actions: ['*'], reason: 'no rule grants *' }],
      check: 'registry-auth-proxy policy test',
    });
    // not refused, only not asked for: the client should fetch a token for it (Distribution's 401)
    const other = await fetch(`${proxy.url}/v2/_catalog`, {
      headers: { authorization: `Bearer ${await tokenFor(proxy, ['repository:team-a/app:pull'])}` },
    });
    expect(other.status).toBe(401);
    expect(other.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(upstreamSaw('/v2/_catalog')).toBe(false);
  });

  it('a HEAD carries the reason in the status line (it has no body)', async () => {
    const res = await fetch(`${proxy.url}/v2/team-b/app/manifests/v1`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${await tokenFor(proxy, ['repository:team-b/app:pull'])}` },
    });
    expect(res.status).toBe(403);
    expect(res.statusText).toContain(PULL_TEAM_B);
  });

  it('audit result: granted, partial or denied, the same value the metric counts', async () => {
    await tokenFor(proxy, ['repository:team-a/app:pull,push']);
    await tokenFor(proxy, ['repository:shared/base:pull,push']);
    await tokenFor(proxy, ['repository:team-b/app:pull']);
    const audit = proxy.logs
      .filter((l) => l.includes('"audit":"token"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const lines = [
      'repository:team-a/app:pull,push',
      'repository:shared/base:pull,push',
      'repository:team-b/app:pull',
    ].map((s) => [...audit].reverse().find((l) => JSON.stringify(l.requested) === JSON.stringify([s]))!);
    expect(lines.map((l) => [l.result, l.granted, l.refused])).toEqual([
      ['granted', ['repository:team-a/app:pull,push'], []],
      ['partial', ['repository:shared/base:pull'], ['repository:shared/base:push']],
      ['denied', [], ['repository:team-b/app:pull']],
    ]);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    for (const result of ['granted', 'partial', 'denied'])
      expect(metrics).toMatch(new RegExp(`rap_token_decisions_total\\{issuer="ci",result="${result}"\\} [1-9]`));
    expect(metrics).not.toMatch(/result="issued"/);
  });
});

describe('containerd 1.6 (ctr; the resolver the CRI plugin uses)', () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd();
    await containerd.pull(`${proxy.host}/team-a/app:v1`, { user: `x:${id}` });
  });
  afterAll(() => containerd?.stop());

  const ctr = (args: string[]) =>
    runClient(requireTool('ctr'), ['--address', containerd.address, '--namespace', 'rap-test', ...args], {
      timeoutMs: 60_000,
    });

  it('denied pull: prints the status line, which carries the reason', async () => {
    const r = await ctr(['images', 'pull', '--plain-http', '--user', `x:${id}`, `${proxy.host}/team-b/app:v1`]);
    expect(r.code).not.toBe(0);
    // ctr: failed to resolve reference "…/team-b/app:v1": pulling from host … failed with status
    // code [manifests v1]: 403 Forbidden: issuer ci, subject job-42 was refused pull on …
    expect(r.out).toContain(`failed with status code [manifests v1]: 403 Forbidden: ${PULL_TEAM_B}.`);
  });

  it('denied push', async () => {
    expect((await ctr(['images', 'tag', `${proxy.host}/team-a/app:v1`, `${proxy.host}/shared/base:v1`])).code).toBe(0);
    const r = await ctr(['images', 'push', '--plain-http', '--user', `x:${id}`, `${proxy.host}/shared/base:v1`]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`unexpected status: 403 Forbidden: ${PUSH_SHARED}.`);
    expect(upstreamSaw('/v2/shared/base/blobs/uploads')).toBe(false);
  });
});

describe('podman 4.3 and buildah 1.28', () => {
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
  });
  afterAll(() => podman?.stop());

  it('podman: denied push and pull, and a tag listing that does not blame the credentials', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const push = await podman.podman([
      'push',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      'local/app:v1',
      `${proxy.host}/shared/base:v1`,
    ]);
    expect(push.code).not.toBe(0);
    expect(push.out).toContain(
      `Error: writing blob: initiating layer upload to /v2/shared/base/blobs/uploads/ in ${proxy.host}: denied: ${PUSH_SHARED}.`,
    );
    const pull = await podman.podman([
      'pull',
      '--tls-verify=false',
      '--creds',
      `x:${id}`,
      `${proxy.host}/team-b/app:v1`,
    ]);
    expect(pull.code).not.toBe(0);
    expect(pull.out).toContain(
      `Error: initializing source docker://${proxy.host}/team-b/app:v1: reading manifest v1 in ${proxy.host}/team-b/app: denied: ${PULL_TEAM_B}.`,
    );
    const auth = podman.newAuthFile();
    expect(
      (
        await podman.podman(['login', '--tls-verify=false', '-u', 'x', '--password-stdin', proxy.host], {
          authFile: auth,
          input: id,
        })
      ).code,
    ).toBe(0);
    const tags = await podman.podman(['search', '--list-tags', '--tls-verify=false', `${proxy.host}/team-b/app`], {
      authFile: auth,
    });
    expect(tags.code).not.toBe(0);
    expect(tags.out).toContain('fetching tags list: invalid status code from registry 403 (Forbidden)');
    expect(tags.out).not.toMatch(/invalid username\/password/);
  });

  it('buildah: denied push and pull', async (ctx) => {
    if (unavailable) ctx.skip(unavailable);
    const buildah = requireTool('buildah');
    // buildah shares podman's storage and configuration (the same containers/storage, flags and env)
    const global = [
      '--root',
      join(podman.dir, 'root'),
      '--runroot',
      join(podman.dir, 'run'),
      '--storage-driver',
      'vfs',
    ];
    const env = {
      ...process.env,
      REGISTRY_AUTH_FILE: podman.newAuthFile(),
      CONTAINERS_REGISTRIES_CONF: join(podman.dir, 'registries.conf'),
      TMPDIR: join(podman.dir, 'tmp'),
    };
    const push = await runClient(
      buildah,
      [
        ...global,
        'push',
        '--tls-verify=false',
        '--creds',
        `x:${id}`,
        'local/app:v1',
        `docker://${proxy.host}/shared/base:v1`,
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(push.code).not.toBe(0);
    expect(push.out).toContain(
      `writing blob: initiating layer upload to /v2/shared/base/blobs/uploads/ in ${proxy.host}: denied: ${PUSH_SHARED}.`,
    );
    const pull = await runClient(
      buildah,
      [...global, 'pull', '--tls-verify=false', '--creds', `x:${id}`, `${proxy.host}/team-b/app:v1`],
      {
        env,
        timeoutMs: 60_000,
      },
    );
    expect(pull.code).not.toBe(0);
    expect(pull.out).toContain(`reading manifest v1 in ${proxy.host}/team-b/app: denied: ${PULL_TEAM_B}.`);
  });
});

describe('Docker (CLI against dockerd 20.10)', () => {
  let dockerd: Dockerd | string;
  beforeAll(async () => {
    dockerd = await startDockerdOrReason();
    if (typeof dockerd === 'string') return;
    const load = await dockerd.docker(['load', '-q', '-i', join(work, 'image.tar')]);
    expect(load.code, load.out).toBe(0);
  }, 120_000);
  afterAll(async () => {
    if (typeof dockerd === 'object') await dockerd.stop();
  });

  it('denied push and pull print the reason after `docker login` with the identity token', async (ctx) => {
    if (typeof dockerd === 'string') return ctx.skip(dockerd);
    const d = dockerd;
    const config = d.newConfigDir();
    const login = await d.docker(['login', '-u', 'x', '--password-stdin', proxy.host], { config, input: id });
    expect(login.code, login.out).toBe(0);
    expect((await d.docker(['tag', 'local/app:v1', `${proxy.host}/shared/base:v1`], { config })).code).toBe(0);
    const push = await d.docker(['push', `${proxy.host}/shared/base:v1`], { config });
    expect(push.code).not.toBe(0);
    expect(push.out).toContain(`denied: ${PUSH_SHARED}.`);
    const pull = await d.docker(['pull', `${proxy.host}/team-b/app:v1`], { config });
    expect(pull.code).not.toBe(0);
    // Docker's own prefix for DENIED on a pull, then the body's message
    expect(pull.out).toContain(
      `pull access denied for ${proxy.host}/team-b/app, repository does not exist or may require 'docker login': denied: ${PULL_TEAM_B}.`,
    );
    expect(upstreamSaw('/v2/team-b/app/manifests')).toBe(false);
  });
});

describe('explainDenials: false', () => {
  let quiet: TestProxy;
  beforeAll(async () => {
    quiet = await startProxy({ upstream: registry.url, policy: POLICY, config: { explainDenials: false } });
  });
  afterAll(() => quiet?.stop());

  it("the same 403 DENIED with Distribution's generic words: no identity, no rule name", async () => {
    const idq = await quiet.mintIdentity({}, { ttl: 600 });
    const r = await sk([
      'delete',
      '--tls-verify=false',
      '--creds',
      `x:${idq}`,
      `docker://${quiet.host}/releases/app:v1`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('requested access to the resource is denied');
    expect(r.out).toContain('403 Forbidden');
    expect(r.out).not.toMatch(/nobody-deletes-releases|job-42|policy test/);
    const pull = await sk([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `x:${idq}`,
      `docker://${quiet.host}/team-b/app:v1`,
      `oci:${join(work, 'quiet')}:v1`,
    ]);
    expect(pull.out).toContain('reading manifest v1 in');
    expect(pull.out).toContain('denied: requested access to the resource is denied');
    // the token itself carries no rule names either (the client can read its payload)
    const t = (await quiet.requestToken(idq, ['repository:releases/app:*'])).body.token!;
    expect(Buffer.from(t.split('.')[1]!, 'base64url').toString()).not.toContain('nobody-deletes-releases');
    expect(Buffer.from(t.split('.')[1]!, 'base64url').toString()).toContain('"refused"');
  });
});
