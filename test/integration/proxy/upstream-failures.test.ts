import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startContainerd, type Containerd } from '../../fixtures/containerd.js';
import { buildOciImage } from '../../fixtures/images.js';
import { freePort, startRegistry, type Registry } from '../../fixtures/registry.js';
import { requireTool } from '../../support/tools.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { TestIssuer } from '../../support/issuer.js';

/**
 * Issue 10, "start-up that tells the truth": Debian's stock registry config has htpasswd auth, so a
 * proxy without upstream credentials made every call a bare 502 while /readyz said ready. Now
 * /readyz sends `GET /v2/` with the proxy's own credentials and says which check failed, and the
 * 502/503 a client gets names the failed side in its OCI body and in the status line — the only
 * part Docker, containerd and containers/image (skopeo, podman, buildah) print for a 5xx.
 * The upstream is a real Distribution registry with `auth: htpasswd` (it provisions user `docker`
 * with a random password and logs it when the htpasswd file is missing).
 */
const run = promisify(execFile);
let dir: string;
let registry: Registry;
let password: string;
const proxies: Record<'none' | 'wrong' | 'right' | 'dead', TestProxy> = {} as never;

async function skopeoFails(args: string[]): Promise<string> {
  return run(requireTool('skopeo'), [...args], { timeout: 60_000 }).then(
    (r) => `unexpected success: ${r.stdout}`,
    (e: { stderr?: string }) => e.stderr ?? '',
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-upfail-'));
  registry = await startRegistry({ htpasswd: join(dir, 'htpasswd') });
  const m = /password=(\S+) user=docker/.exec(registry.logs());
  if (!m) throw new Error(`the registry did not log its provisioned password:\n${registry.logs()}`);
  password = m[1]!;
  writeFileSync(join(dir, 'right'), password);
  writeFileSync(join(dir, 'wrong'), 'not-the-password');
  const basic = (file: string) => ({
    upstream: { url: registry.url, auth: { type: 'basic', username: 'docker', passwordFile: join(dir, file) } },
  });
  proxies.none = await startProxy({ upstream: registry.url });
  proxies.wrong = await startProxy({ config: basic('wrong') });
  proxies.right = await startProxy({ config: basic('right') });
  proxies.dead = await startProxy({ upstream: `http://127.0.0.1:${await freePort()}` });
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p?.stop();
  await registry?.stop();
});

describe("/readyz checks that the upstream accepts the proxy's own credentials", () => {
  it('not ready without credentials or with wrong ones, naming only the failed check; ready with the right ones', async () => {
    for (const [name, detail] of [
      ['none', 'answered HTTP 401 and upstream.auth is none: the upstream needs credentials (set upstream.auth)'],
      ['wrong', "answered HTTP 401 with the proxy's upstream.auth (basic): check them"],
    ] as const) {
      const r = await fetch(`${proxies[name].url}/readyz`);
      const text = await r.text();
      expect(r.status, name).toBe(503);
      expect(JSON.parse(text)).toEqual({ status: 'not ready', reasons: ["upstream rejected the proxy's credentials"] });
      expect(text).not.toContain(new URL(registry.url).port);
      const line = proxies[name].logs.find((l) => l.includes("readiness: upstream rejected the proxy's credentials"));
      expect(line, name).toContain(detail);
      expect(line).not.toContain(password);
    }
    const ok = await fetch(`${proxies.right.url}/readyz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'ready' });
  });

  it('with the right credentials, pushes and pulls go through (the readiness it reports is true)', async () => {
    const image = buildOciImage(join(dir, 'img'), { layers: 1 });
    const id = await proxies.right.mintIdentity();
    await run(
      requireTool('skopeo'),
      [
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        `x:${id}`,
        image.ref,
        `docker://${proxies.right.host}/team-a/app:v1`,
      ],
      { timeout: 60_000 },
    );
    const { stdout } = await run(
      requireTool('skopeo'),
      ['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxies.right.host}/team-a/app:v1`],
      { timeout: 60_000 },
    );
    expect(JSON.parse(stdout).Name).toBe(`${proxies.right.host}/team-a/app`);
  });
});

describe('5xx answers say which side failed', () => {
  it("the OCI body and the status line, without the upstream's address or error text", async () => {
    const pull = async (p: TestProxy) => {
      const token = await p.registryToken(['repository:team-a/app:pull']);
      const r = await fetch(`${p.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, statusText: r.statusText, text: await r.text() };
    };
    const rejected = await pull(proxies.none);
    expect(rejected).toMatchObject({
      status: 502,
      statusText: "Bad Gateway (upstream rejected the proxy's credentials)",
    });
    expect(JSON.parse(rejected.text).errors[0]).toEqual({
      code: 'UNAVAILABLE',
      message:
        "upstream registry rejected the proxy's own credentials: the proxy's upstream.auth needs fixing; your credentials were accepted",
    });
    const down = await pull(proxies.dead);
    expect(down).toMatchObject({ status: 502, statusText: 'Bad Gateway (upstream registry unreachable)' });
    expect(JSON.parse(down.text).errors[0]).toEqual({
      code: 'UNAVAILABLE',
      message:
        'upstream registry unreachable (ECONNREFUSED): the registry behind this proxy did not answer; your credentials were accepted',
    });
    for (const r of [rejected, down]) expect(r.text).not.toMatch(/127\.0\.0\.1|http:|basic-realm|docker/);
  });

  it('skopeo prints the failed side', async () => {
    for (const [p, why] of [
      [proxies.none, "upstream rejected the proxy's credentials"],
      [proxies.dead, 'upstream registry unreachable'],
    ] as const) {
      const id = await p.mintIdentity();
      const out = await skopeoFails([
        'inspect',
        '--tls-verify=false',
        '--retry-times',
        '0',
        '--creds',
        `x:${id}`,
        `docker://${p.host}/team-a/app:v1`,
      ]);
      // skopeo 1.9: … reading manifest v1 in <host>/team-a/app: received unexpected HTTP status: 502 Bad Gateway (<why>)
      expect(out).toContain(`received unexpected HTTP status: 502 Bad Gateway (${why})`);
    }
  });

  describe('containerd', () => {
    let containerd: Containerd;
    beforeAll(async () => {
      containerd = await startContainerd();
    });
    afterAll(async () => {
      await containerd?.stop();
    });

    it('ctr prints the failed side', async () => {
      const id = await proxies.none.mintIdentity();
      const out = await containerd.pull(`${proxies.none.host}/team-a/app:v1`, { user: `x:${id}` }).then(
        (o) => `unexpected success: ${o}`,
        (e: Error) => e.message,
      );
      // ctr 1.6: … pulling from host <host> failed with status code [manifests v1]: 502 Bad Gateway (upstream rejected the proxy's credentials)
      expect(out).toContain("502 Bad Gateway (upstream rejected the proxy's credentials)");
    });
  });

  it('an issuer whose keys cannot be loaded: /token answers 503 naming the issuer side', async () => {
    const port = await freePort(); // nothing listens: discovery fails
    const issuer = `http://127.0.0.1:${port}`;
    const p = await startProxy({ upstream: registry.url, config: { issuers: [{ name: 'offline', issuer }] } });
    try {
      const offline = await TestIssuer.create({ issuer, audience: 'registry.test', kid: 'k', claims: { sub: 's' } });
      const r = await p.requestToken(await offline.mint(), ['repository:team-a/app:pull']);
      // Docker and ctr print the status line: "503 Service Unavailable (identity issuer unavailable)"
      expect(r.status).toBe(503);
      expect(r.statusText).toBe('Service Unavailable (identity issuer unavailable)');
      const body = r.body as { errors: { code: string; message: string }[] };
      expect(body.errors[0]).toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringMatching(
          /^identity token refused: keys of issuer .* (are not available yet|could not be fetched)/,
        ),
      });
      expect(((await (await fetch(`${p.url}/readyz`)).json()) as { reasons: string[] }).reasons).toContain(
        'identity issuer keys not loaded yet',
      );
    } finally {
      await p.stop();
    }
  });
});
