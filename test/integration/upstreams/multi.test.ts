import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildOciImage } from '../../fixtures/images.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { startProxy, type TestProxy } from '../../helpers/server.js';
import { requireTool } from '../../support/tools.js';
import { parse } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';

/**
 * Issue 12, several upstreams behind one proxy (`upstreams:`): two real Distribution registries,
 * one per prefix (`a/`, `b/`); the prefix is removed on the way up and added back to Location.
 * Policies see request.upstream.
 */
const run = promisify(execFile);

const POLICY = `
rules:
  - name: team-on-a
    actions: [pull, push]
    when: identity.issuerName == "ci" && request.upstream == "reg-a" && request.repository.startsWith("a/" + claims.team + "/")
  - name: pull-b
    actions: [pull]
    when: identity.issuerName == "ci" && request.upstream == "reg-b"
  - name: push-b
    actions: [push]
    when: identity.issuerName == "ci" && request.upstream == "reg-b" && claims.team == "builders"
  - name: builders-pull-a
    actions: [pull]
    when: identity.issuerName == "ci" && request.upstream == "reg-a" && claims.team == "builders"
  - name: catalog
    actions: ["*"]
    when: request.type == "registry" && request.upstream == ""
`;

let dir: string;
let regA: Registry;
let regB: Registry;
let proxy: TestProxy;

async function skopeo(args: string[]): Promise<string> {
  return (await run(requireTool('skopeo'), args, { timeout: 60_000 })).stdout;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rap-multi-'));
  regA = await startRegistry();
  regB = await startRegistry();
  proxy = await startProxy({
    policy: POLICY,
    config: {
      upstreams: [
        { name: 'reg-a', prefix: 'a/', url: regA.url },
        { name: 'reg-b', prefix: 'b/', url: regB.url },
      ],
    },
  });
});

afterAll(async () => {
  await proxy?.stop();
  await regA?.stop();
  await regB?.stop();
});

describe('several upstreams behind one proxy', () => {
  it('pushes and pulls through both prefixes; each registry holds only its own repositories, under upstream names', async () => {
    const image = buildOciImage(join(dir, 'img'), { layers: 2 });
    const id = await proxy.mintIdentity({ team: 'builders' });
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/a/builders/app:v1`,
    ]);
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `x:${id}`,
      image.ref,
      `docker://${proxy.host}/b/tools/app:v1`,
    ]);
    expect(await regA.repositories()).toEqual(['builders/app']);
    expect(await regB.repositories()).toEqual(['tools/app']);
    for (const ref of ['a/builders/app:v1', 'b/tools/app:v1']) {
      await skopeo([
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `x:${id}`,
        `docker://${proxy.host}/${ref}`,
        `oci:${join(dir, 'pulled')}:${ref.replace(/\W/g, '-')}`,
      ]);
    }
    const inspect = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', '--creds', `x:${id}`, `docker://${proxy.host}/b/tools/app:v1`]),
    );
    expect(inspect.Name).toBe(`${proxy.host}/b/tools/app`);
    const token = await proxy.registryToken(['repository:a/builders/app:pull'], { team: 'builders' });
    const tags = await fetch(`${proxy.url}/v2/a/builders/app/tags/list`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await tags.json()).toEqual({ name: 'a/builders/app', tags: ['v1'] });
  });

  it('policies decide with request.upstream', async () => {
    const id = await proxy.mintIdentity({ team: 'readers' });
    const answer = await proxy.requestToken(id, ['repository:b/tools/app:pull,push', 'repository:a/builders/app:pull']);
    expect(answer.status).toBe(200);
    const payload = JSON.parse(Buffer.from(answer.body.token!.split('.')[1]!, 'base64url').toString());
    const access = payload.access as { name: string; actions: string[] }[];
    expect(access).toEqual([{ type: 'repository', name: 'b/tools/app', actions: ['pull'] }]);
  });

  it('gives Locations back under the client name; a mount across upstreams becomes a plain upload', async () => {
    const token = await proxy.registryToken(
      ['repository:b/tools/copy:pull,push', 'repository:b/tools/app:pull', 'repository:a/tools/app:pull'],
      {
        team: 'builders',
      },
    );
    const auth = { authorization: `Bearer ${token}` };
    const manifest = await fetch(`${proxy.url}/v2/b/tools/app/manifests/v1`, {
      headers: { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const layer = ((await manifest.json()) as { layers: { digest: string }[] }).layers[0]!.digest;
    const mount = (from: string) =>
      fetch(`${proxy.url}/v2/b/tools/copy/blobs/uploads/?mount=${layer}&from=${from}`, {
        method: 'POST',
        headers: auth,
      });
    // Same upstream: reg-b mounts tools/app's layer into tools/copy; the Location names the client's repository.
    const same = await mount('b/tools/app');
    await same.text();
    expect(same.status).toBe(201);
    expect(same.headers.get('location')).toBe(`${proxy.url}/v2/b/tools/copy/blobs/${layer}`);
    // a/tools/app is reg-a's `tools/app`: sent to reg-b as `from=tools/app` it would mount (201); it is an upload instead.
    const cross = await mount('a/tools/app');
    await cross.text();
    expect(cross.status).toBe(202);
    expect(cross.headers.get('location')).toMatch(new RegExp(`^${proxy.url}/v2/b/tools/copy/blobs/uploads/[^/?]+`));
  });

  it('/readyz probes every upstream; upstream latency is labelled by upstream', async () => {
    const ready = await fetch(`${proxy.url}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready' });
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(metrics).toMatch(
      /^rap_upstream_response_seconds_count\{route="manifest",status="201",upstream="reg-a"\} [1-9]/m,
    );
    expect(metrics).toMatch(
      /^rap_upstream_response_seconds_count\{route="manifest",status="201",upstream="reg-b"\} [1-9]/m,
    );
  });

  it('refuses the catalog with several upstreams', async () => {
    const token = await proxy.registryToken(['registry:catalog:*'], { team: 'builders' });
    const res = await fetch(`${proxy.url}/v2/_catalog`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      errors: [{ code: 'UNSUPPORTED', message: expect.stringMatching(/several upstreams/) }],
    });
  });
});

describe('upstreams config', () => {
  const build = (upstreams: unknown[], extra: Record<string, unknown> = {}) =>
    buildConfig({ listen: '127.0.0.1:0', upstreams, ...extra }, {}, undefined);

  it('rejects overlapping prefixes, duplicate names, two defaults, and a bad prefix', () => {
    expect(() =>
      build([
        { name: 'x', prefix: 'hub/', url: 'http://a' },
        { name: 'y', prefix: 'hub/lib/', url: 'http://b' },
      ]),
    ).toThrow(/overlap/);
    expect(() =>
      build([
        { name: 'x', prefix: 'a/', url: 'http://a' },
        { name: 'x', prefix: 'b/', url: 'http://b' },
      ]),
    ).toThrow(/used twice/);
    expect(() =>
      build([
        { name: 'x', url: 'http://a' },
        { name: 'y', url: 'http://b' },
      ]),
    ).toThrow(/at most one/);
    expect(() => build([{ name: 'x', prefix: 'hub', url: 'http://a' }])).toThrow(/ending in "\/"/);
    expect(() => build([{ name: 'x', url: 'http://a' }], { upstream: { url: 'http://c' } })).toThrow(
      /both the default/,
    );
    expect(() =>
      build([{ name: 'x', prefix: 'a/', url: 'http://a', timeout: '10m' }], { limits: { idleTimeout: '5m' } }),
    ).toThrow(/idleTimeout/);
  });

  it('the entry without prefix is the default upstream', () => {
    const config = build([
      { name: 'x', url: 'http://a' },
      { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' },
    ]);
    expect(config.upstreams.find((u) => u.prefix === '')?.url).toBe('http://a');
    expect(config.upstreams?.map((u) => [u.name, u.prefix])).toEqual([
      ['x', ''],
      ['hub', 'hub/'],
    ]);
  });

  it("docs/upstreams.md's snippet is a valid config", () => {
    const doc = readFileSync(new URL('../../../docs/upstreams.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Several upstreams'));
    const snippet = section.split('```yaml')[1]!.split('```')[0]!;
    const config = buildConfig({ listen: '127.0.0.1:0', ...(parse(snippet) as object) }, {}, undefined);
    expect(config.upstreams?.map((u) => `${u.name}:${u.prefix}:${u.auth.type}`)).toEqual([
      'local::none',
      'hub:hub/:registry-token',
      'ecr:aws/:ecr',
    ]);
  });
});
