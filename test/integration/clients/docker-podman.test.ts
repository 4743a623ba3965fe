import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { runClient, startDockerdOrReason, type CliResult, type Dockerd } from '../../fixtures/dockerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { startPodmanOrReason, type Podman } from '../../fixtures/podman.js';
import { useEngineForRegistries, type Registry } from '../../fixtures/registry.js';
import { requireTool } from '../../support/tools.js';
import { runCli } from '../../helpers/cli.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';

/**
 * Docker (CLI + a private dockerd 20.10) and podman 4.3 through the proxy, against a real
 * Distribution registry that runs — when the engine is up — as a container started by
 * testcontainers on that same private engine. Identity tokens come from the built-in test issuer;
 * the default test policy lets `team: team-a` push and pull `team-a/*` and nothing else.
 */

const run = promisify(execFile);
const HELPER_BIN = fileURLToPath(new URL('../../../bin/docker-credential-registry-auth-proxy.js', import.meta.url));

let engine: Dockerd | string;
let podman: Podman | string;
let stack: RegistryAndProxy;
let registry: Registry;
let proxy: TestProxy;
let work: string;
/** A two-layer image as a docker-archive tarball (what `docker load` and `podman load` read), named `loadedAs`. */
let archive: string;
let loadedAs: string;

function dockerOrSkip(ctx: TestContext): Dockerd {
  if (typeof engine === 'string') ctx.skip(engine);
  return engine as Dockerd;
}
function podmanOrSkip(ctx: TestContext): Podman {
  if (typeof podman === 'string') ctx.skip(podman);
  return podman as Podman;
}
function ok(r: CliResult): CliResult {
  expect(r.code, r.out).toBe(0);
  return r;
}

/** What the proxy answers, in its OCI error `message`, when this identity asks for `actions` on `repo` and then makes the request. */
async function denialMessage(
  identity: string,
  repo: string,
  actions: string,
  method: string,
  path: string,
): Promise<string> {
  const { token } = (await proxy.requestToken(identity, [`repository:${repo}:${actions}`])).body;
  const res = await fetch(`${proxy.url}/v2/${repo}/${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]!.code).toBe('DENIED');
  return body.errors[0]!.message;
}

beforeAll(async () => {
  engine = await startDockerdOrReason();
  podman = await startPodmanOrReason();
  // registries of this file run through testcontainers on the private engine (the binary without it)
  if (typeof engine !== 'string') await useEngineForRegistries(engine);
  stack = await startRegistryAndProxy();
  ({ registry, proxy } = stack);
  work = mkdtempSync(join(tmpdir(), 'rap-docker-podman-'));
  // made offline: an OCI layout of random layers, turned into a docker-archive by skopeo
  const image = buildOciImage(join(work, 'oci'), { layers: 2, layerBytes: 32 * 1024 });
  archive = join(work, 'image.tar');
  loadedAs = 'localhost/rap-test/app:v1'; // fully qualified: podman would otherwise file it under docker.io
  await run(requireTool('skopeo'), ['copy', '--quiet', image.ref, `docker-archive:${archive}:${loadedAs}`], {
    timeout: 60_000,
  });
  // team-b/private exists upstream, so a refused pull is the policy's doing, not a missing repository
  const teamB = await proxy.mintIdentity({ team: 'team-b', sub: 'team-b-job' });
  await run(
    requireTool('skopeo'),
    [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${teamB}`,
      image.ref,
      `docker://${proxy.host}/team-b/private:v1`,
    ],
    { timeout: 60_000 },
  );
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  if (typeof podman === 'object') await podman.stop();
  if (typeof engine === 'object') await engine.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('registry fixture on the private engine', () => {
  it('runs the Debian registry image through testcontainers (host network) and the proxy pushes to it', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    expect(registry.backend).toBe('testcontainers');
    const ps = ok(await docker.docker(['ps', '--format', '{{.Image}} {{.Status}}']));
    expect(ps.stdout).toMatch(/^rap-test\/registry:debian Up/m);
    // the setup's push of team-b/private went proxy -> container
    expect(await registry.repositories()).toContain('team-b/private');
    expect(registry.logs()).toContain('team-b/private');
  });
});

describe('docker', () => {
  let config: string;
  let identity: string;

  beforeAll(async () => {
    if (typeof engine === 'string') return;
    identity = await proxy.mintIdentity({ sub: 'docker-user' });
    config = engine.newConfigDir();
    ok(await engine.docker(['load', '--input', archive]));
  });

  it('logs in with the identity token and keeps only the refresh token, as identitytoken', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const login = ok(
      await docker.docker(['login', proxy.host, '--username', 'anything', '--password-stdin'], {
        config,
        input: identity,
      }),
    );
    expect(login.stdout).toContain('Login Succeeded');
    const file = readFileSync(join(config, 'config.json'), 'utf8');
    // The daemon asked /token with offline_token=true and got a refresh token; the CLI then drops
    // the password and stores `auth` = base64("anything:") plus that refresh token.
    const entry = (JSON.parse(file) as { auths: Record<string, { auth?: string; identitytoken?: string }> }).auths[
      proxy.host
    ]!;
    expect(file).not.toContain(identity);
    expect(Buffer.from(entry.auth ?? '', 'base64').toString()).toBe('anything:');
    const refresh = decodeJwt(entry.identitytoken!);
    expect(refresh.iss).toBe(proxy.config.publicURL);
    expect(refresh.sub).toContain('docker-user');
    const audit = proxy.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l));
    expect(audit.some((a) => a.clientId === 'docker' && a.refresh === true && a.subject === 'docker-user')).toBe(true);
  });

  it('pushes, then pulls after the local image is gone (refresh-token grants)', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const ref = `${proxy.host}/team-a/docker:v1`;
    ok(await docker.docker(['tag', loadedAs, ref]));
    const push = ok(await docker.docker(['push', ref], { config }));
    const pushed = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1];
    expect(pushed, push.out).toBeDefined();
    expect(await registry.repositories()).toContain('team-a/docker');
    ok(await docker.docker(['image', 'rm', ref], { config }));
    const pull = ok(await docker.docker(['pull', ref], { config }));
    expect(pull.stdout).toContain(`Digest: ${pushed}`);
    const grants = proxy.logs
      .filter((l) => l.includes('"audit":"token"'))
      .map((l) => JSON.parse(l))
      .filter((a) => a.subject === 'docker-user');
    expect(
      grants.some((a) => a.grant === 'refresh_token' && a.granted.includes('repository:team-a/docker:push,pull')),
    ).toBe(true);
  });

  it("a refused push tells the user it was denied, with the proxy's message", async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const ref = `${proxy.host}/team-b/docker:v1`;
    ok(await docker.docker(['tag', loadedAs, ref]));
    const push = await docker.docker(['push', ref], { config });
    // Docker 28 CLI + dockerd 20.10 print (before issue 10 the last line was only
    // "denied: requested access to the resource is denied"):
    //   The push refers to repository [127.0.0.1:<port>/team-b/docker]
    //   0d8e8c32b8a5: Preparing
    //   denied: issuer ci, subject docker-user was refused pull, push on repository team-b/docker: no rule
    //   grants pull, push. Check with: registry-auth-proxy policy test --issuer-name ci --scope '…' --claims <identity token>
    expect(push.code).not.toBe(0);
    const message = await denialMessage(identity, 'team-b/docker', 'pull,push', 'POST', 'blobs/uploads/');
    expect(push.out).toContain(`denied: ${message}`);
    expect(await registry.repositories()).not.toContain('team-b/docker');
  });

  it("a refused pull tells the user it was denied, with the proxy's message", async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const pull = await docker.docker(['pull', `${proxy.host}/team-b/private:v1`], { config });
    // dockerd 20.10 prints:
    //   Error response from daemon: pull access denied for 127.0.0.1:<port>/team-b/private, repository
    //   does not exist or may require 'docker login': denied: issuer ci, subject docker-user was refused
    //   pull on repository team-b/private: no rule grants pull. Check with: registry-auth-proxy policy test …
    expect(pull.code).not.toBe(0);
    const message = await denialMessage(identity, 'team-b/private', 'pull', 'GET', 'manifests/v1');
    expect(pull.out).toContain(`denied: ${message}`);
  });

  it('pushes and pulls with no login, through the credential helper named in credHelpers', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const bin = join(work, 'helper-bin');
    mkdirSync(bin, { recursive: true });
    // the built helper on PATH under the name Docker looks for (node from this test run)
    const wrapper = join(bin, 'docker-credential-registry-auth-proxy');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${HELPER_BIN}" "$@"\n`);
    chmodSync(wrapper, 0o755);
    const tokenFile = join(work, 'helper-token');
    writeFileSync(tokenFile, await proxy.mintIdentity({ sub: 'helper-user' }));
    const helperConfig = docker.newConfigDir({ credHelpers: { [proxy.host]: 'registry-auth-proxy' } });
    const env = { PATH: `${bin}:${process.env.PATH}`, RAP_REGISTRIES: proxy.host, RAP_TOKEN_FILE: tokenFile };
    const ref = `${proxy.host}/team-a/helper:v1`;
    ok(await docker.docker(['tag', loadedAs, ref]));
    ok(await docker.docker(['push', ref], { config: helperConfig, env }));
    ok(await docker.docker(['image', 'rm', ref]));
    ok(await docker.docker(['pull', ref], { config: helperConfig, env }));
    expect(await registry.repositories()).toContain('team-a/helper');
    // `docker login` and `docker logout` still work: the helper's store/erase succeed, keeping nothing
    const login = ok(
      await docker.docker(['login', proxy.host, '--username', 'anything', '--password-stdin'], {
        config: helperConfig,
        env,
        input: readFileSync(tokenFile, 'utf8'),
      }),
    );
    expect(login.stdout).toContain('Login Succeeded');
    ok(await docker.docker(['logout', proxy.host], { config: helperConfig, env }));
    // the identity token and the refresh token stay out of config.json: only the helper entry is there
    const file = JSON.parse(readFileSync(join(helperConfig, 'config.json'), 'utf8')) as {
      auths?: Record<string, { auth?: string; identitytoken?: string }>;
    };
    expect(Object.values(file.auths ?? {}).filter((a) => a.auth || a.identitytoken)).toEqual([]);
    const subjects = proxy.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l).subject);
    expect(subjects).toContain('helper-user');
  });
});

describe('podman', () => {
  let authFile: string;
  let identity: string;

  beforeAll(async () => {
    if (typeof podman === 'string') return;
    identity = await proxy.mintIdentity({ sub: 'podman-user' });
    authFile = podman.newAuthFile();
    ok(await podman.podman(['load', '--quiet', '--input', archive]));
  });

  it('logs in with the identity token (kept as the password in the auth file)', async (ctx) => {
    const p = podmanOrSkip(ctx);
    const login = ok(
      await p.podman(['login', '--tls-verify=false', '--username', 'anything', '--password-stdin', proxy.host], {
        authFile,
        input: identity,
      }),
    );
    expect(login.stdout).toContain('Login Succeeded!');
    // containers/image has no identity-token notion: the password itself is stored, and sent
    // to /token on every push and pull
    const entry = (JSON.parse(readFileSync(authFile, 'utf8')) as { auths: Record<string, { auth: string }> }).auths[
      proxy.host
    ]!;
    expect(Buffer.from(entry.auth, 'base64').toString()).toBe(`anything:${identity}`);
  });

  it('pushes, then pulls after the local image is gone', async (ctx) => {
    const p = podmanOrSkip(ctx);
    const ref = `${proxy.host}/team-a/podman:v1`;
    ok(await p.podman(['tag', loadedAs, ref]));
    ok(await p.podman(['push', '--tls-verify=false', ref], { authFile }));
    expect(await registry.repositories()).toContain('team-a/podman');
    ok(await p.podman(['rmi', ref]));
    const pull = ok(await p.podman(['pull', '--tls-verify=false', ref], { authFile }));
    expect(pull.out).toContain('Writing manifest to image destination');
    const subjects = proxy.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l).subject);
    expect(subjects).toContain('podman-user');
  });

  it("a refused push (pull allowed, push not) tells the user why, with the proxy's message", async (ctx) => {
    const p = podmanOrSkip(ctx);
    const ref = `${proxy.host}/shared/podman:v1`;
    ok(await p.podman(['tag', loadedAs, ref]));
    const push = await p.podman(['push', '--tls-verify=false', ref], { authFile });
    // podman 4.3.1 prints (the blob HEADs pass, pull being allowed; the upload POST is refused):
    //   Error: writing blob: initiating layer upload to /v2/shared/podman/blobs/uploads/ in 127.0.0.1:<port>:
    //   denied: issuer ci, subject podman-user was refused push on repository shared/podman: no rule grants push. …
    expect(push.code).not.toBe(0);
    const message = await denialMessage(identity, 'shared/podman', 'pull,push', 'POST', 'blobs/uploads/');
    expect(push.out).toContain(`denied: ${message}`);
    expect(await registry.repositories()).not.toContain('shared/podman');
  });

  it('a refused push where nothing is granted fails, naming the repository', async (ctx) => {
    const p = podmanOrSkip(ctx);
    const ref = `${proxy.host}/team-b/podman:v1`;
    ok(await p.podman(['tag', loadedAs, ref]));
    const push = await p.podman(['push', '--tls-verify=false', ref], { authFile });
    // podman 4.3.1's first request is a blob HEAD (no body), and for its status it prints Go's
    // status text, not the reason phrase, so the proxy's reason is lost here:
    //   Error: trying to reuse blob sha256:… at destination: failed to read from destination
    //   repository team-b/podman: 403 (Forbidden)
    expect(push.code).not.toBe(0);
    expect(push.out).toMatch(/team-b\/podman: (403 \(Forbidden\)|denied)/);
    expect(await registry.repositories()).not.toContain('team-b/podman');
  });

  it("a refused pull tells the user it was denied, with the proxy's message", async (ctx) => {
    const p = podmanOrSkip(ctx);
    const pull = await p.podman(['pull', '--tls-verify=false', `${proxy.host}/team-b/private:v1`], { authFile });
    // podman 4.3.1 prints:
    //   Trying to pull 127.0.0.1:<port>/team-b/private:v1...
    //   Error: initializing source docker://127.0.0.1:<port>/team-b/private:v1: reading manifest v1 in
    //   127.0.0.1:<port>/team-b/private: denied: issuer ci, subject podman-user was refused pull on
    //   repository team-b/private: no rule grants pull. Check with: registry-auth-proxy policy test …
    expect(pull.code).not.toBe(0);
    const message = await denialMessage(identity, 'team-b/private', 'pull', 'GET', 'manifests/v1');
    expect(pull.out).toContain(`denied: ${message}`);
  });
});

/**
 * Issue 25: `docker login` stores our refresh token as `identitytoken` in config.json, which
 * containers/common also reads; podman/skopeo 4.x `login` then refuses while their own auth file
 * has no entry for the registry. What resolves it, as seen with podman 4.3.1 and skopeo 1.9.3: no
 * podman login at all (pull and push use Docker's login), or `registry-auth-proxy login --auth-file`.
 */
describe('docker and podman on one machine', () => {
  let dockerConfig: string;
  let identity: string;
  const conflict = 'currently logged in, auth file contains an Identity token';

  beforeAll(async () => {
    if (typeof engine === 'string' || typeof podman === 'string') return;
    identity = await proxy.mintIdentity({ sub: 'both-user' });
    dockerConfig = engine.newConfigDir();
    ok(
      await engine.docker(['login', proxy.host, '--username', 'anything', '--password-stdin'], {
        config: dockerConfig,
        input: identity,
      }),
    );
  });

  it('after docker login, podman and skopeo login refuse — even with their own REGISTRY_AUTH_FILE', async (ctx) => {
    dockerOrSkip(ctx);
    const p = podmanOrSkip(ctx);
    const env = { DOCKER_CONFIG: dockerConfig };
    const login = ['login', '--tls-verify=false', '--username', 'anything', '--password-stdin', proxy.host];
    const r = await p.podman(login, { authFile: p.newAuthFile(), env, input: identity });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Error: ${conflict}`);
    const s = await runClient(requireTool('skopeo'), login, {
      env: { ...process.env, ...env, REGISTRY_AUTH_FILE: p.newAuthFile() },
      input: identity,
    });
    expect(s.code).not.toBe(0);
    expect(s.stderr).toContain(conflict);
  });

  it("needs no podman login: podman pushes and pulls with Docker's login (a refresh-token grant)", async (ctx) => {
    dockerOrSkip(ctx);
    const p = podmanOrSkip(ctx);
    const ref = `${proxy.host}/team-a/both:v1`;
    const opts = { authFile: p.newAuthFile(), env: { DOCKER_CONFIG: dockerConfig } };
    ok(await p.podman(['tag', loadedAs, ref]));
    ok(await p.podman(['push', '--tls-verify=false', ref], opts));
    ok(await p.podman(['rmi', ref]));
    ok(await p.podman(['pull', '--tls-verify=false', ref], opts));
    const grants = proxy.logs
      .filter((l) => l.includes('"audit":"token"'))
      .map((l) => JSON.parse(l))
      .filter((a) => a.subject === 'both-user' && a.clientId === 'containers/image');
    expect(
      grants.some((a) => a.grant === 'refresh_token' && a.granted.includes('repository:team-a/both:pull,push')),
      JSON.stringify(grants),
    ).toBe(true);
  });

  it('registry-auth-proxy login --auth-file logs podman in, says so, and podman login works again', async (ctx) => {
    dockerOrSkip(ctx);
    const p = podmanOrSkip(ctx);
    const authFile = p.newAuthFile();
    const env = { DOCKER_CONFIG: dockerConfig };
    const r = await runCli(['login', proxy.host, '--token-file', '-', '--auth-file', authFile], {
      stdin: identity,
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `login: ${join(dockerConfig, 'config.json')} also holds Docker's login for ${proxy.host} (docker login's refresh token): podman and skopeo read ${authFile} first`,
    );
    const login = await p.podman(
      ['login', '--tls-verify=false', '--username', 'anything', '--password-stdin', proxy.host],
      { authFile, env, input: identity },
    );
    expect(login.code, login.out).toBe(0);
    expect(login.stdout).toContain('Login Succeeded!');
    // Docker's login is untouched
    expect(readFileSync(join(dockerConfig, 'config.json'), 'utf8')).toContain('identitytoken');
  });

  it('podman login works with DOCKER_CONFIG pointed elsewhere, or after docker logout', async (ctx) => {
    const docker = dockerOrSkip(ctx);
    const p = podmanOrSkip(ctx);
    const login = ['login', '--tls-verify=false', '--username', 'anything', '--password-stdin', proxy.host];
    const elsewhere = ok(
      await p.podman(login, {
        authFile: p.newAuthFile(),
        env: { DOCKER_CONFIG: docker.newConfigDir() },
        input: identity,
      }),
    );
    expect(elsewhere.stdout).toContain('Login Succeeded!');
    ok(await docker.docker(['logout', proxy.host], { config: dockerConfig }));
    const after = ok(
      await p.podman(login, { authFile: p.newAuthFile(), env: { DOCKER_CONFIG: dockerConfig }, input: identity }),
    );
    expect(after.stdout).toContain('Login Succeeded!');
  });
});
