import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedManifest } from '../../support/seed.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { EngineUnavailable } from '../../fixtures/dockerd.js';
import { startPodman, type Podman } from '../../fixtures/podman.js';
import { startRegistryAndProxy, type RegistryAndProxy } from '../../helpers/registry-and-proxy.js';
import { DEFAULT_TEST_POLICY, startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * The catalog through the proxy against a real registry: a token granted `registry:catalog:*` sees
 * only the repositories its identity may pull — filtered as the list streams through.
 */
let stack: RegistryAndProxy;
let proxy: TestProxy;

const POLICY = `${DEFAULT_TEST_POLICY}
  - name: ci-lists-catalog
    actions: ["*"]
    when: identity.issuerName == "ci" && request.type == "registry"
`;

const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

async function catalog(
  team: string,
  query = '',
): Promise<{ status: number; body: { repositories: string[] }; link: string | null }> {
  const token = await proxy.registryToken(['registry:catalog:*'], { team });
  const r = await fetch(`${proxy.url}/v2/_catalog${query}`, {
    headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' },
  });
  return { status: r.status, body: (await r.json()) as { repositories: string[] }, link: r.headers.get('link') };
}

async function catalogRaw(
  team: string,
  query: string,
): Promise<{ status: number; body: { errors: { code: string; message: string }[] } }> {
  const token = await proxy.registryToken(['registry:catalog:*'], { team });
  const r = await fetch(`${proxy.url}/v2/_catalog${query}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as { errors: { code: string; message: string }[] } };
}

beforeAll(async () => {
  stack = await startRegistryAndProxy({ policy: POLICY });
  proxy = stack.proxy;
  for (const repo of ['shared/base', 'team-a/app', 'team-a/tools', 'team-b/secret'])
    await seedManifest(stack.registry.url, repo);
});
afterAll(() => stack?.stop());

describe('catalog filtering', () => {
  it('lists only what each identity may pull', async () => {
    const direct = (await (await fetch(`${stack.registry.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(direct.repositories).toEqual(['shared/base', 'team-a/app', 'team-a/tools', 'team-b/secret']);
    const a = await catalog('team-a');
    expect(a.status).toBe(200);
    expect(a.body.repositories).toEqual(['shared/base', 'team-a/app', 'team-a/tools']);
    expect((await catalog('team-b')).body.repositories).toEqual(['shared/base', 'team-b/secret']);
    expect((await catalog('team-c')).body.repositories).toEqual(['shared/base']);
  });

  it("keeps the registry's pagination working without naming any repository in Link", async () => {
    const page = await catalog('team-b', '?n=2');
    expect(page.body.repositories).toEqual(['shared/base']);
    // the upstream's Link names team-a/app (the last of its unfiltered page): sealed into a cursor
    expect(page.link).toMatch(
      new RegExp(`^<${proxy.url.replace(/[.]/g, '\\.')}/v2/_catalog\\?last=~[A-Za-z0-9_-]+&n=2>; rel="next"$`),
    );
    expect(page.link).not.toMatch(/team|shared/);
    const next = await catalog('team-b', new URL(/<([^>]+)>/.exec(page.link!)![1]!).search);
    expect(next.body.repositories).toEqual(['team-b/secret']);
  });

  it('closes the ordering oracle: a plain `last` is refused before the registry, an empty one is the first page', async () => {
    // For team-b, team-a/app and team-a/tools are hidden between shared/base and team-b/secret. Were
    // `last=<guess>` forwarded, `n=1` after `team-a/ap` would be empty (a hidden name follows) and
    // after `team-a/zz` would show team-b/secret: the answers would spell hidden names out.
    const logged = stack.registry.logs().length;
    const answers = [];
    for (const guess of ['team-a%2Fap', 'team-a%2Fzz', 'team-a%2Fapp', 'team-b%2Fsecre~'])
      answers.push(await catalogRaw('team-b', `?n=1&last=${guess}`));
    for (const a of answers) {
      expect(a.status).toBe(400);
      expect(a.body).toEqual(answers[0]!.body);
    }
    expect(answers[0]!.body.errors[0]).toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringMatching(/cursor from the previous page's Link header, not a repository name/),
    });
    expect(stack.registry.logs().slice(logged)).not.toContain('_catalog');
    // go-containerregistry's CatalogPage asks for the first page with `last=`
    expect((await catalog('team-b', '?last=&n=2')).body.repositories).toEqual(['shared/base']);
  });

  it('walks every page with n=1 and learns only what the identity may pull', async () => {
    const seen: string[] = [];
    const links: string[] = [];
    let query = '?n=1';
    for (let i = 0; i < 10 && query; i++) {
      const page = await catalog('team-c', query);
      expect(page.status).toBe(200);
      seen.push(...page.body.repositories);
      if (page.link) links.push(page.link);
      query = page.link ? new URL(/<([^>]+)>/.exec(page.link)![1]!).search : '';
    }
    expect(query).toBe('');
    expect(seen).toEqual(['shared/base']);
    expect(links.length).toBeGreaterThanOrEqual(3);
    for (const l of links) expect(l).not.toMatch(/team-|shared/);
  });

  it('refuses a cursor it did not seal', async () => {
    const page = await catalog('team-a', '?n=1');
    const cursor = new URL(/<([^>]+)>/.exec(page.link!)![1]!).searchParams.get('last')!;
    const tampered = `${cursor.slice(0, -3)}${cursor.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    const r = await catalogRaw('team-a', `?last=${tampered}&n=1`);
    expect(r.status).toBe(400);
    expect(r.body.errors[0]!.code).toBe('UNSUPPORTED');
    expect(r.body.errors[0]!.message).toMatch(/cursor/);
  });
});

/**
 * One upstream behind a prefix (`upstreams: [{prefix: reg/}]`): the catalog lists the names clients
 * use (`reg/team-a/app`), and policy decides on those — here a tenant rule that keeps each team out
 * of the others' `reg/team-*` repositories.
 */
describe('catalog of a lone prefixed upstream', () => {
  const PREFIXED_POLICY = `
rules:
  - name: ci-pulls
    actions: [pull]
    when: identity.issuerName == "ci"
  - name: tenants-stay-home
    effect: deny
    actions: [pull]
    when: request.repository.startsWith("reg/team-") && !request.repository.startsWith("reg/" + claims.team + "/")
  - name: ci-lists-catalog
    actions: ["*"]
    when: identity.issuerName == "ci" && request.type == "registry"
`;
  // Names of very different lengths: sealed cursors must not tell them apart.
  const LONG = `team-a/${'l'.repeat(100)}/${'m'.repeat(140)}`;
  let registry: Registry;
  let prefixed: TestProxy;

  beforeAll(async () => {
    registry = await startRegistry();
    for (const repo of ['shared/base', 'team-a/app', LONG, 'team-b/secret', 'x'])
      await seedManifest(registry.url, repo);
    prefixed = await startProxy({
      policy: PREFIXED_POLICY,
      config: { upstreams: [{ name: 'reg', prefix: 'reg/', url: registry.url }] },
    });
  });
  afterAll(async () => {
    await prefixed?.stop();
    await registry?.stop();
  });

  async function page(query: string): Promise<{ status: number; names: string[]; link: string | null }> {
    const token = await prefixed.registryToken(['registry:catalog:*'], { team: 'team-a' });
    const r = await fetch(`${prefixed.url}/v2/_catalog${query}`, { headers: { authorization: `Bearer ${token}` } });
    return {
      status: r.status,
      names: ((await r.json()) as { repositories: string[] }).repositories,
      link: r.headers.get('link'),
    };
  }

  it('lists the names clients use, decided by policy on those names, and each one pulls', async () => {
    const all = await page('');
    expect(all.status).toBe(200);
    expect(all.names).toEqual(['reg/shared/base', 'reg/team-a/app', `reg/${LONG}`, 'reg/x']);
    for (const name of all.names) {
      const token = await prefixed.registryToken([`repository:${name}:pull`], { team: 'team-a' });
      const r = await fetch(`${prefixed.url}/v2/${name}/manifests/latest`, {
        headers: { authorization: `Bearer ${token}`, accept: MANIFEST_ACCEPT },
      });
      expect(r.status, name).toBe(200);
      await r.body?.cancel();
    }
  });

  it('podman search (a real catalog client) shows the prefixed names', async (ctx) => {
    let podman: Podman;
    try {
      podman = await startPodman();
    } catch (err) {
      if (!(err instanceof EngineUnavailable) || process.env.CI === 'true') throw err;
      return ctx.skip(`podman cannot run here: ${err.message}`);
    }
    try {
      const auth = podman.newAuthFile();
      const id = await prefixed.mintIdentity({ team: 'team-a' });
      const login = await podman.podman(['login', '--tls-verify=false', '-u', 'x', '--password-stdin', prefixed.host], {
        authFile: auth,
        input: id,
      });
      expect(login.code, login.out).toBe(0);
      const found = await podman.podman(
        ['search', '--tls-verify=false', '--format', '{{.Name}}', `${prefixed.host}/`],
        { authFile: auth },
      );
      expect(found.code, found.out).toBe(0);
      expect(found.stdout.trim().split('\n')).toEqual(
        ['reg/shared/base', 'reg/team-a/app', `reg/${LONG}`, 'reg/x'].map((n) => `${prefixed.host}/${n}`),
      );
    } finally {
      await podman.stop();
    }
  });

  it('pages with n=1 through cursors that seal the upstream names, all of one length', async () => {
    const seen: string[] = [];
    const cursors: string[] = [];
    let query = '?n=1';
    for (let i = 0; i < 10 && query; i++) {
      const p = await page(query);
      expect(p.status).toBe(200);
      seen.push(...p.names);
      const next = p.link ? new URL(/<([^>]+)>/.exec(p.link)![1]!) : undefined;
      if (next) cursors.push(next.searchParams.get('last')!);
      query = next?.search ?? '';
    }
    expect(query).toBe('');
    expect(seen).toEqual(['reg/shared/base', 'reg/team-a/app', `reg/${LONG}`, 'reg/x']);
    // one cursor per upstream name but the last (10 to 248 characters)
    expect(cursors).toHaveLength(4);
    expect(new Set(cursors.map((c) => c.length)).size, cursors.map((c) => c.length).join(',')).toBe(1);
    // and a plain name is refused here too, whether the upstream's or the client's
    for (const last of ['team-a%2Fapp', 'reg%2Fteam-a%2Fapp'])
      expect((await page(`?n=1&last=${last}`)).status).toBe(400);
  });
});
