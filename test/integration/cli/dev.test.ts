import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOciImage, type OciImage } from '../../fixtures/images.js';
import { freePort, startRegistry, type Registry } from '../../fixtures/registry.js';
import { outcome, requireTool } from '../../support/tools.js';
import { ROOT } from '../../helpers/cli.js';

/**
 * `registry-auth-proxy --dev` as a reader runs it: the built CLI, its embedded Distribution
 * registry, the banner's commands pasted into a shell, and the processes it leaves (none).
 */

const BIN = join(ROOT, 'bin', 'registry-auth-proxy.js');

interface DevRun {
  child: ChildProcess;
  output(): string;
  /** The JSON log lines (stderr lines that parse). */
  logs(): Record<string, unknown>[];
  exited: Promise<number | null>;
}

const runs: DevRun[] = [];
let work: string;

function startDev(args: string[], env: NodeJS.ProcessEnv = {}): DevRun {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: work,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const run: DevRun = {
    child,
    output: () => out,
    logs: () =>
      out.split('\n').flatMap((l) => {
        if (!l.startsWith('{')) return [];
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    exited,
  };
  runs.push(run);
  return run;
}

/** Waits (bounded) until the output matches, failing early when the process exits. */
async function waitForOutput(run: DevRun, re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = run.output().match(re);
    if (m) return m;
    if (run.child.exitCode !== null)
      throw new Error(`--dev exited with ${run.child.exitCode} before printing ${re}:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`--dev did not print ${re} within ${timeoutMs} ms:\n${run.output()}`);
}

/** A process is gone when it no longer exists or is a zombie waiting for init to reap it. */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function waitGone(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (processGone(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return processGone(pid);
}

/** Its exit code, or 'started' once it serves (bounded either way). */
function exitedOrStarted(run: DevRun): Promise<number | null | 'started'> {
  return Promise.race([run.exited, waitForOutput(run, /Check the token:/).then(() => 'started' as const)]);
}

function registryPid(run: DevRun): number {
  const line = run.logs().find((l) => l.msg === 'embedded registry started');
  expect(line, run.output()).toBeDefined();
  return line!.registryPid as number;
}

/** Runs one line of the banner in a shell, as a reader pasting it would. */
async function paste(line: string, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; out: string }> {
  return outcome('sh', ['-c', line], { env: { ...process.env, ...env } });
}

function bannerLine(run: DevRun, prefix: string): string {
  const line = run
    .output()
    .split('\n')
    .find((l) => l.trimStart().startsWith(prefix));
  expect(line, `banner line "${prefix}…":\n${run.output()}`).toBeDefined();
  return line!.trim();
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  requireTool('docker-registry');
  requireTool('skopeo');
  work = mkdtempSync(join(tmpdir(), 'rap-dev-test-'));
});

afterEach(async () => {
  for (const r of runs.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('registry-auth-proxy --dev with no upstream: an embedded registry, end to end', () => {
  it('serves, prints paste-able commands that push and pull, verifies its token, and stops its registry on SIGTERM', async () => {
    const state = join(work, 'state');
    const tmp = join(work, 'tmp');
    mkdirSync(tmp);
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    // A podman user's REGISTRY_AUTH_FILE must not reach Distribution, which reads REGISTRY_* as config.
    const run = startDev(['--dev', '--state-dir', state, '--listen', host], {
      TMPDIR: tmp,
      REGISTRY_AUTH_FILE: join(work, 'auth.json'),
    });
    await waitForOutput(run, /Check the token:\n.*\n/);

    // The banner names the token file; the file is private and holds the token, which is never printed.
    const tokenFile = join(state, 'token');
    expect(bannerLine(run, 'token:')).toBe(`token:    ${tokenFile}`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(run.output()).not.toContain(token);
    expect(bannerLine(run, 'docker login')).toBe(`docker login ${host} -u dev --password-stdin < ${tokenFile}`);
    expect(bannerLine(run, 'podman login')).toBe(
      `podman login --tls-verify=false ${host} -u dev --password-stdin < ${tokenFile}`,
    );

    // The embedded registry serves, on loopback, holding the demo image the banner pulls.
    const pid = registryPid(run);
    const upstream = run.logs().find((l) => l.msg === 'embedded registry started')!.url as string;
    expect(upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // Its port refuses anyone without the proxy's credentials: no way around the proxy (issue 18 item 8).
    for (const path of ['/v2/', '/v2/_catalog', '/v2/demo/hello/manifests/latest']) {
      const direct = await fetch(`${upstream}${path}`);
      expect(direct.status, path).toBe(401);
      expect(direct.headers.get('www-authenticate'), path).toMatch(/^Basic realm=/);
    }
    const push = await fetch(`${upstream}/v2/demo/sneak/blobs/uploads/`, { method: 'POST' });
    expect(push.status).toBe(401);
    // Those credentials are new each run, in files only the owner reads; never printed.
    const password = readFileSync(join(state, 'registry-password'), 'utf8');
    expect(password).toMatch(/^[\w-]{43}$/);
    for (const f of ['registry-password', 'registry.htpasswd', 'registry.yml'])
      expect(statSync(join(state, f)).mode & 0o777, f).toBe(0o600);
    expect(readFileSync(join(state, 'registry.htpasswd'), 'utf8')).not.toContain(password);
    expect(run.output()).not.toContain(password);
    const wrongPassword = await fetch(`${upstream}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('registry-auth-proxy:x').toString('base64')}` },
    });
    expect(wrongPassword.status).toBe(401);
    const asProxy = { authorization: `Basic ${Buffer.from(`registry-auth-proxy:${password}`).toString('base64')}` };
    const catalog = await fetch(`${upstream}/v2/_catalog`, { headers: asProxy });
    expect(await catalog.json()).toEqual({ repositories: ['demo/hello'] });
    const ready = await fetch(`http://${host}/readyz`);
    expect(ready.status).toBe(200);
    expect((await fetch(`http://${host}/v2/`)).status).toBe(401);

    // skopeo, exactly as printed: log in with the token file, copy the demo image through the proxy.
    const authEnv = { REGISTRY_AUTH_FILE: join(work, 'auth.json') };
    const login = await paste(bannerLine(run, 'skopeo login'), authEnv);
    expect(login.ok, login.out).toBe(true);
    const copy = await paste(bannerLine(run, 'skopeo copy'), authEnv);
    expect(copy.ok, copy.out).toBe(true);
    const afterCopy = (await (await fetch(`${upstream}/v2/_catalog`, { headers: asProxy })).json()) as {
      repositories: string[];
    };
    expect(afterCopy.repositories).toEqual(['demo/copy', 'demo/hello']);
    // …and pull what was pushed back out of the proxy into an OCI layout: the one file is there.
    const pulled = join(work, 'pulled');
    const pull = await paste(
      `skopeo copy --src-tls-verify=false docker://${host}/demo/copy:latest oci:${pulled}:latest`,
      authEnv,
    );
    expect(pull.ok, pull.out).toBe(true);
    const index = JSON.parse(readFileSync(join(pulled, 'index.json'), 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(1);
    const listing = await paste(`for b in ${pulled}/blobs/sha256/*; do tar -tzf "$b" 2>/dev/null; done`, {});
    expect(listing.out.split('\n')).toContain('hello.txt');
    // A wrong password is refused: the proxy is doing the deciding, not the registry behind it.
    const wrong = await paste(
      `skopeo inspect --tls-verify=false --creds dev:not-a-token docker://${host}/demo/hello:latest`,
      {
        REGISTRY_AUTH_FILE: join(work, 'none.json'),
      },
    );
    expect(wrong.ok).toBe(false);

    // `verify --dev`, as printed, accepts the dev token.
    const verify = await paste(bannerLine(run, `node ${BIN} verify --dev`), {});
    expect(verify.ok, verify.out).toBe(true);
    expect(JSON.parse(verify.out.slice(verify.out.indexOf('{'), verify.out.lastIndexOf('}') + 1))).toMatchObject({
      valid: true,
      issuerName: 'dev',
      identity: { subject: 'developer' },
    });

    // SIGTERM: the proxy drains, stops its registry and exits 0; nothing is left behind in TMPDIR.
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(await waitGone(pid)).toBe(true);
    expect(readdirSync(tmp)).toEqual([]);

    // The state persists: the next start finds the demo image and the key, so the old token still verifies.
    const again = startDev(['--dev', '--state-dir', state, '--listen', host]);
    await waitForOutput(again, /Check the token:\n.*\n/);
    const old = await paste(`node ${BIN} verify --dev --state-dir ${state} ${token}`, {});
    expect(old.ok, old.out).toBe(true);
    const pid2 = registryPid(again);
    // The proxy killed outright (no handler runs): the kernel still stops the registry (no orphan).
    again.child.kill('SIGKILL');
    await again.exited;
    expect(await waitGone(pid2)).toBe(true);
  });

  it('stops, exit 1 and saying so, when its registry dies', async () => {
    const state = join(work, 'state-dies');
    const run = startDev(['--dev', '--state-dir', state, '--listen', `127.0.0.1:${await freePort()}`]);
    await waitForOutput(run, /Check the token:/);
    process.kill(registryPid(run), 'SIGKILL');
    expect(await run.exited).toBe(1);
    expect(run.logs().some((l) => l.msg === 'the embedded registry exited: stopping' && l.level === 50)).toBe(true);
  });

  it('exits 2 naming the problem when the registry binary it is told to use does not exist', async () => {
    const run = startDev(
      ['--dev', '--state-dir', join(work, 'state-nobin'), '--listen', `127.0.0.1:${await freePort()}`],
      {
        RAP_DEV_REGISTRY: join(work, 'no-such-registry'),
      },
    );
    expect(await run.exited).toBe(2);
    expect(run.output()).toContain(
      `--dev: RAP_DEV_REGISTRY=${join(work, 'no-such-registry')} is not an executable file`,
    );
  });

  it('refuses, exit 2 naming the path and the fix, a state directory others may write or another user owns', async () => {
    const open = join(work, 'state-open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const run = startDev(['--dev', '--state-dir', open, '--listen', `127.0.0.1:${await freePort()}`]);
    expect(await exitedOrStarted(run)).toBe(2);
    expect(run.output()).toContain(
      `--dev: the state directory ${open} is writable by others (mode 777): chmod 700 ${open}`,
    );
    expect(readdirSync(open)).toEqual([]); // nothing read or written in it

    const foreign = join(work, 'state-foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 65534, 65534); // the tests run as root (CI); nobody owns it
    const uid = process.getuid!();
    const run2 = startDev(['--dev', '--state-dir', foreign, '--listen', `127.0.0.1:${await freePort()}`]);
    expect(await exitedOrStarted(run2)).toBe(2);
    expect(run2.output()).toContain(
      `--dev: the state directory ${foreign} belongs to uid 65534, not to you (uid ${uid}): use a directory of your own (--state-dir)`,
    );
    expect(readdirSync(foreign)).toEqual([]);
  });

  it('verify --dev without a dev state says how to create one (exit 2)', async () => {
    const run = startDev(['verify', '--dev', '--state-dir', join(work, 'never-started'), 'x.y.z']);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/issuer\.yaml does not exist: start `registry-auth-proxy --dev`/);
  });
});

describe('registry-auth-proxy --dev --config: the file wins over dev defaults, flags over the file', () => {
  let registry: Registry;
  let image: OciImage;
  beforeAll(async () => {
    registry = await startRegistry();
    image = buildOciImage(join(work, 'image'), { layers: 1, layerBytes: 1024 });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("honours the file's listen, upstream and policies; no embedded registry", async () => {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const policy = join(work, 'only-allowed.yaml');
    writeFileSync(
      policy,
      'rules:\n  - name: dev-may-use-allowed\n    actions: [pull, push]\n    when: identity.issuerName == "dev" && request.repository.startsWith("allowed/")\n',
    );
    const config = join(work, 'dev-config.yaml');
    writeFileSync(config, `listen: ${host}\nupstream:\n  url: ${registry.url}\npolicies: ${policy}\n`);
    const state = join(work, 'state-config');
    const run = startDev(['--dev', '--config', config, '--state-dir', state]);
    await waitForOutput(run, /Check the token:\n.*\n/);
    expect(run.logs().some((l) => l.msg === 'embedded registry started')).toBe(false);
    expect(run.logs().find((l) => l.msg === 'registry-auth-proxy listening')).toMatchObject({
      url: `http://${host}`,
      upstream: registry.url,
    });
    expect(bannerLine(run, 'upstream:')).toBe(`upstream: ${registry.url}`);

    const token = readFileSync(join(state, 'token'), 'utf8').trim();
    const push = (repo: string) =>
      paste(
        `skopeo copy --dest-tls-verify=false --dest-creds dev:${token} ${image.ref} docker://${host}/${repo}:v1`,
        {},
      );
    const allowed = await push('allowed/app');
    expect(allowed.ok, allowed.out).toBe(true);
    // The dev policy (allow everything) would have let this through; the file's policy does not.
    const other = await push('other/app');
    expect(other.ok).toBe(false);
    expect(await registry.repositories()).toEqual(['allowed/app']);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('a --listen flag beats the file', async () => {
    const config = join(work, 'dev-config-listen.yaml');
    writeFileSync(config, `listen: 127.0.0.1:${await freePort()}\nupstream:\n  url: ${registry.url}\n`);
    const flagPort = await freePort();
    const run = startDev([
      '--dev',
      '--config',
      config,
      '--state-dir',
      join(work, 'state-listen'),
      '--listen',
      `127.0.0.1:${flagPort}`,
    ]);
    await waitForOutput(run, /Check the token:/);
    expect(run.logs().find((l) => l.msg === 'registry-auth-proxy listening')).toMatchObject({
      url: `http://127.0.0.1:${flagPort}`,
    });
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});
