import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedManifest } from '../../../bench/lib/seed.js';
import { startRegistry, type Registry } from '../../fixtures/registry.js';
import { DEFAULT_TEST_POLICY, startProxy, type TestProxy } from '../../helpers/server.js';

/**
 * The catalog through the proxy against a real registry: a token granted `registry:catalog:*` sees
 * only the repositories its identity may pull — filtered as the list streams through.
 */
let registry: Registry;
let proxy: TestProxy;

const POLICY = `${DEFAULT_TEST_POLICY}
  - name: ci-lists-catalog
    actions: ["*"]
    when: identity.issuerName == "ci" && request.type == "registry"
`;

async function catalog(team: string, query = ''): Promise<{ status: number; body: { repositories: string[] }; link: string | null }> {
  const id = await proxy.mintIdentity({ team });
  const t = await fetch(`${proxy.url}/token?service=registry.test&scope=registry:catalog:*`, { headers: { authorization: `Basic ${Buffer.from(`x:${id}`).toString('base64')}` } });
  const { token } = (await t.json()) as { token: string };
  const r = await fetch(`${proxy.url}/v2/_catalog${query}`, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip' } });
  return { status: r.status, body: (await r.json()) as { repositories: string[] }, link: r.headers.get('link') };
}

beforeAll(async () => {
  registry = await startRegistry();
  for (const repo of ['shared/base', 'team-a/app', 'team-a/tools', 'team-b/secret']) await seedManifest(registry.url, repo);
  proxy = await startProxy({ upstream: registry.url, policy: POLICY });
});
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('catalog filtering', () => {
  it('lists only what each identity may pull', async () => {
    const direct = (await (await fetch(`${registry.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(direct.repositories).toEqual(['shared/base', 'team-a/app', 'team-a/tools', 'team-b/secret']);
    const a = await catalog('team-a');
    expect(a.status).toBe(200);
    expect(a.body.repositories).toEqual(['shared/base', 'team-a/app', 'team-a/tools']);
    expect((await catalog('team-b')).body.repositories).toEqual(['shared/base', 'team-b/secret']);
    expect((await catalog('team-c')).body.repositories).toEqual(['shared/base']);
  });

  it('keeps the registry\'s pagination working', async () => {
    const page = await catalog('team-b', '?n=2');
    expect(page.body.repositories).toEqual(['shared/base']);
    expect(page.link).toMatch(/<\/v2\/_catalog\?last=team-a%2Fapp&n=2>; rel="next"/);
    const next = await catalog('team-b', '?last=team-a%2Fapp&n=2');
    expect(next.body.repositories).toEqual(['team-b/secret']);
  });
});
