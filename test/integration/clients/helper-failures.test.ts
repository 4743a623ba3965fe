import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runClient } from '../../fixtures/dockerd.js';
import { startPodmanOrReason, type Podman } from '../../fixtures/podman.js';
import { requireTool } from '../../support/tools.js';

/**
 * Issue 25: what a user sees when the credential helper cannot answer (no token file, or one that
 * expired: the kubelet or CI job stopped refreshing it), with
 * each client. The helper fails before any registry is contacted, so no registry runs: Docker's
 * CLI talks to a stand-in daemon that records the credentials it is handed, podman and skopeo stop
 * at the credential lookup. Docker (CLI 28) drops a failed lookup and pulls anonymously — a real
 * daemon then says "authentication required" — so the helper's stderr line is all its user gets;
 * podman and skopeo print the helper's stdout in their own error, and pass its stderr through.
 */
const HELPER_BIN = fileURLToPath(new URL('../../../bin/docker-credential-registry-auth-proxy.js', import.meta.url));
const HOST = '127.0.0.1:9';
const REF = `${HOST}/team-a/app:v1`;

let dir: string;
let env: NodeJS.ProcessEnv;
let daemon: Server;
let handed: string[];
let podman: Podman | string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-helper-fail-'));
  mkdirSync(join(dir, 'bin'));
  const wrapper = join(dir, 'bin', 'docker-credential-registry-auth-proxy');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${HELPER_BIN}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  env = {
    PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
    RAP_REGISTRIES: HOST,
  };
  // the Engine API as far as `docker pull` goes: a ping, then the pull, answered with an error
  handed = [];
  daemon = createServer((req, res) => {
    if (req.url?.endsWith('/_ping')) return void res.writeHead(200, { 'api-version': '1.43' }).end('OK');
    handed.push(Buffer.from(String(req.headers['x-registry-auth'] ?? ''), 'base64').toString());
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(
        `${JSON.stringify({ error: 'authentication required', errorDetail: { message: 'authentication required' } })}\n`,
      );
  });
  await new Promise<void>((resolve) => daemon.listen(join(dir, 'docker.sock'), resolve));
  podman = await startPodmanOrReason();
});
afterAll(async () => {
  await new Promise<void>((resolve) => daemon.close(() => resolve()));
  if (typeof podman === 'object') await podman.stop();
});

/** An identity token whose exp passed long ago (decoded, never verified, by the helper). */
const EXPIRED = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'job', exp: 1_700_000_000 })).toString('base64url')}.c2ln`;

describe.each([
  {
    what: 'no token file',
    file: () => join(dir, 'no-such-token'),
    message: () => 'no identity token file found',
    fix: 'set RAP_TOKEN_FILE to an existing file',
  },
  {
    what: 'an expired token file',
    file: () => {
      const f = join(dir, 'expired-token');
      writeFileSync(f, EXPIRED);
      return f;
    },
    // the file, when, and how to refresh it
    message: () => `identity token file ${join(dir, 'expired-token')} expired at 2023-11-14T22:13:20.000Z (`,
    fix: 'the kubelet rewrites a projected token well before exp; in CI, request a new OIDC token) — put a fresh token there',
  },
])('the credential helper cannot answer ($what)', ({ what, file, message, fix }) => {
  const slug = what.replace(/\W+/g, '-');
  let tokenEnv: NodeJS.ProcessEnv;
  beforeAll(() => {
    tokenEnv = { ...env, RAP_TOKEN_FILE: file() };
  });
  const quoted = (m: string) =>
    new RegExp(`error getting credentials - err: exit status 1, out: \`${m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);

  it('docker: goes on without credentials; the helper line on stderr is what says why', async () => {
    const config = join(dir, `docker-${slug}`);
    mkdirSync(config);
    writeFileSync(join(config, 'config.json'), JSON.stringify({ credHelpers: { [HOST]: 'registry-auth-proxy' } }));
    handed = [];
    const r = await runClient(requireTool('docker'), ['pull', REF], {
      env: { ...tokenEnv, DOCKER_CONFIG: config, DOCKER_HOST: `unix://${join(dir, 'docker.sock')}` },
    });
    expect(r.code).not.toBe(0);
    expect(handed).toEqual(['{}']);
    expect(r.stderr).toContain(`docker-credential-registry-auth-proxy: ${message()}`);
    expect(r.stderr).toContain(fix);
  });

  it('podman: its error quotes the helper, and the helper line is there too', async (ctx: TestContext) => {
    if (typeof podman === 'string') return ctx.skip(podman);
    const authFile = podman.newAuthFile({ credHelpers: { [HOST]: 'registry-auth-proxy' } });
    const r = await podman.podman(['pull', '--tls-verify=false', REF], { authFile, env: tokenEnv });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`docker-credential-registry-auth-proxy: ${message()}`);
    expect(r.stderr).toContain(fix);
    expect(r.stderr).toMatch(quoted(message()));
  });

  it('skopeo: the same words as podman', async () => {
    const authFile = join(dir, `skopeo-auth-${slug}.json`);
    writeFileSync(authFile, JSON.stringify({ credHelpers: { [HOST]: 'registry-auth-proxy' } }));
    const r = await runClient(requireTool('skopeo'), ['inspect', '--tls-verify=false', `docker://${REF}`], {
      env: { ...tokenEnv, REGISTRY_AUTH_FILE: authFile },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`docker-credential-registry-auth-proxy: ${message()}`);
    expect(r.stderr).toContain(fix);
    expect(r.stderr).toMatch(quoted(message()));
  });
});
