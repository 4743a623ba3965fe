import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { requireTool } from '../../support/tools.js';
import { runCli } from '../../helpers/cli.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import type { TestProxy } from '../../helpers/server.js';

const run = promisify(execFile);
const HELPER_ENTRY = fileURLToPath(new URL('../../helpers/credential-helper-entry.ts', import.meta.url));
let stack: RegistryAndProxy;
let proxy: TestProxy;
let dir: string;
let binDir: string;

beforeAll(async () => {
  stack = await startRegistryAndProxy();
  proxy = stack.proxy;
  dir = mkdtempSync(join(tmpdir(), 'rap-clients-'));
  // the helper on PATH under the name docker and skopeo look for
  binDir = join(dir, 'bin');
  mkdirSync(binDir);
  const wrapper = join(binDir, 'docker-credential-registry-auth-proxy');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" --import tsx "${HELPER_ENTRY}" "$@"\n`);
  chmodSync(wrapper, 0o755);
});
afterAll(() => stack?.stop());

describe('Docker credential helper with skopeo (no password on the command line)', () => {
  it('pushes and pulls, and keeps working after the token file rotates', async () => {
    const tokenFile = join(dir, 'registry-token');
    writeFileSync(tokenFile, await proxy.mintIdentity({ sub: 'first-token' }));
    const authFile = join(dir, 'auth.json');
    writeFileSync(authFile, JSON.stringify({ credHelpers: { [proxy.host]: 'registry-auth-proxy' } }));
    const env = {
      ...process.env,
      PATH: `${binDir}:${process.env.PATH}`,
      REGISTRY_AUTH_FILE: authFile,
      RAP_TOKEN_FILE: tokenFile,
      RAP_REGISTRIES: proxy.host,
    };
    const skopeo = requireTool('skopeo');
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    await run(skopeo, ['copy', '--dest-tls-verify=false', image.ref, `docker://${proxy.host}/team-a/helper:v1`], {
      env,
      timeout: 60_000,
    });
    await run(
      skopeo,
      ['copy', '--src-tls-verify=false', `docker://${proxy.host}/team-a/helper:v1`, `oci:${join(dir, 'out1')}:v1`],
      { env, timeout: 60_000 },
    );
    // rotate: kubelet rewrites the projected token; the helper reads it afresh
    writeFileSync(tokenFile, await proxy.mintIdentity({ sub: 'rotated-token' }));
    await run(
      skopeo,
      ['copy', '--src-tls-verify=false', `docker://${proxy.host}/team-a/helper:v1`, `oci:${join(dir, 'out2')}:v1`],
      { env, timeout: 60_000 },
    );
    const subjects = proxy.logs.filter((l) => l.includes('"audit":"token"')).map((l) => JSON.parse(l).subject);
    expect(subjects).toContain('first-token');
    expect(subjects.at(-1)).toBe('rotated-token');
  }, 120_000);
});

describe('kubelet path: credential-provider output drives containerd', () => {
  let containerd: Containerd;
  beforeAll(async () => {
    containerd = await startContainerd();
  });
  afterAll(async () => {
    await containerd?.stop();
  });

  it('pulls through the proxy with the credentials the plugin returns for a pod token', async () => {
    const podToken = await proxy.mintIdentity({ sub: 'system:serviceaccount:team-a:builder' });
    const request = {
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      kind: 'CredentialProviderRequest',
      image: `${proxy.host}/team-a/helper:v1`,
      serviceAccountToken: podToken,
    };
    const r = await runCli(['credential-provider'], { stdin: JSON.stringify(request) });
    expect(r.code, r.stderr).toBe(0);
    const response = JSON.parse(r.stdout);
    const cred = response.auth[proxy.host];
    expect(cred.username).not.toBe('');
    const out = await containerd.pull(`${proxy.host}/team-a/helper:v1`, { user: `${cred.username}:${cred.password}` });
    expect(out).toMatch(/done|elapsed|unpacking/);
  });

  it('exits non-zero with nothing on stdout for a malformed request', async () => {
    const r = await runCli(['credential-provider'], { stdin: '{"kind":"CredentialProviderRequest"}' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/apiVersion/);
  });
});

describe('login command', () => {
  it('writes an auth.json skopeo uses, and prints a dockerconfigjson Secret', async () => {
    const tokenFile = join(dir, 'login-token');
    writeFileSync(tokenFile, await proxy.mintIdentity());
    const authFile = join(dir, 'login-auth.json');
    const r = await runCli([
      'login',
      proxy.host,
      '--token-file',
      tokenFile,
      '--auth-file',
      authFile,
      '--k8s-secret',
      'pull',
      '--namespace',
      'team-a',
      '-o',
      'json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: { name: 'pull', namespace: 'team-a' },
    });
    const { stdout } = await run(requireTool('skopeo'), [
      'list-tags',
      '--tls-verify=false',
      '--authfile',
      authFile,
      `docker://${proxy.host}/team-a/helper`,
    ]);
    expect(JSON.parse(stdout).Tags).toEqual(['v1']);
    expect((await runCli(['login', 'bad host', '--token-file', tokenFile])).code).toBe(2);
  });
});
