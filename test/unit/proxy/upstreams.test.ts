import { describe, expect, it } from 'vitest';
import { upstreamConfig } from '../../../src/config/load.js';
import { canonicalRepository, upstreamFor } from '../../../src/config/upstreams.js';
import { formatScope } from '../../../src/oci/scope.js';
import { classify, type Route } from '../../../src/oci/route.js';
import {
  canonicalRoute,
  catalogName,
  clientPath,
  tagsNameRewrite,
  toUpstream,
  upstreamName,
  withNamespace,
  type Target,
} from '../../../src/proxy/upstreams.js';
import { OciError } from '../../../src/oci/errors.js';

const target = (name: string, prefix: string, url: string) =>
  ({ name, prefix, ...upstreamConfig(url) }) as unknown as Target;
const hub = target('hub', 'hub/', 'https://registry-1.docker.io');
const quay = target('quay', 'quay/', 'https://quay.io');
const local = target('local', '', 'http://registry:5000');
const targets = [hub, quay, local];

describe('routing by repository-name prefix', () => {
  it('picks the longest matching prefix, else the default', () => {
    expect(upstreamFor(targets, 'hub/library/nginx')).toBe(hub);
    expect(upstreamFor(targets, 'quay/org/app')).toBe(quay);
    expect(upstreamFor(targets, 'hubx/app')).toBe(local);
    expect(upstreamFor([hub], 'team/app')).toBeUndefined();
  });

  it("removes the prefix; Docker Hub's single-segment names are library/…", () => {
    expect(upstreamName(hub, 'hub/nginx')).toBe('library/nginx');
    expect(upstreamName(hub, 'hub/bitnami/redis')).toBe('bitnami/redis');
    expect(upstreamName(quay, 'quay/app')).toBe('app');
    expect(upstreamName(local, 'team/app')).toBe('team/app');
    // a pull-through cache standing for Docker Hub forwards to Hub, which wants library/ too
    const cache = { prefix: 'hub/', ...upstreamConfig('http://cache:5000'), registry: 'docker.io' };
    expect(upstreamName(cache, 'hub/nginx')).toBe('library/nginx');
    expect(upstreamName({ ...cache, registry: 'ghcr.io' }, 'hub/nginx')).toBe('nginx');
  });

  it('translates path, scopes and mount source; a mount from another upstream is dropped', () => {
    const route = classify(
      'POST',
      '/v2/hub/team/app/blobs/uploads/',
      `mount=sha256:${'a'.repeat(64)}&from=hub/team/base`,
    ) as Route;
    const up = toUpstream(targets, hub, route);
    expect(up.path).toBe('/v2/team/app/blobs/uploads/');
    expect(up.scopes.map((s) => s.name)).toEqual(['team/app', 'team/base']);
    expect(up.query).toBe(`?mount=sha256%3A${'a'.repeat(64)}&from=team%2Fbase`);
    const cross = toUpstream(
      targets,
      hub,
      classify('POST', '/v2/hub/team/app/blobs/uploads/', `mount=sha256:${'a'.repeat(64)}&from=quay/base`) as Route,
    );
    expect(cross.query).toBe('');
    expect(cross.scopes.map((s) => s.name)).toEqual(['team/app']);
  });

  it('gives the upstream paths back with the prefix', () => {
    expect(clientPath('hub/')!('/v2/library/nginx/blobs/uploads/1')).toBe('/v2/hub/library/nginx/blobs/uploads/1');
    expect(clientPath('hub/')!('/v2/_catalog')).toBe('/v2/_catalog');
    expect(clientPath('')).toBeUndefined();
    // Docker Hub's short form was made canonical before authorization: it comes back canonical.
    expect(clientPath('hub/')!('/v2/library/nginx/tags/list?n=10&last=b')).toBe(
      '/v2/hub/library/nginx/tags/list?n=10&last=b',
    );
  });
});

describe("catalog names: the upstream's list by the names clients use", () => {
  // [targets, target, upstream name, client name or undefined]
  const quayOnly = [quay];
  it.each([
    ['a lone prefixed upstream adds its prefix', quayOnly, quay, 'team-a/app', 'quay/team-a/app'],
    ['a lone default upstream keeps names as they are', [local], local, 'team-a/app', 'team-a/app'],
    ["Hub's library/… stays reachable as hub/library/…", [hub], hub, 'library/nginx', 'hub/library/nginx'],
    ['a single-segment name on Hub would be pulled as library/… : not listed', [hub], hub, 'nginx', undefined],
    ['a name the prefix makes invalid', quayOnly, quay, 'Team/App', undefined],
    [
      'a name another upstream would serve (overlapping prefixes: refused by config, refused here too)',
      [quay, target('deep', 'quay/team-b/', 'http://b:5000')],
      quay,
      'team-b/secret',
      undefined,
    ],
    ['an empty name', quayOnly, quay, '', undefined],
  ] as const)('%s', (_what, all, t, name, expected) => {
    expect(catalogName(all, t, name)).toBe(expected);
  });
});

describe('tags/list name rewrite', () => {
  it('gives the client name back, whatever the chunking, and passes the rest untouched', async () => {
    const { Readable } = await import('node:stream');
    const { text } = await import('node:stream/consumers');
    const body = JSON.stringify({ name: 'library/nginx', tags: ['1', 'ü'.repeat(3000)] });
    const chunks = [body.slice(0, 5), body.slice(5, 11), body.slice(11)].map((c) => Buffer.from(c));
    const out = await text(Readable.from(chunks).pipe(tagsNameRewrite('library/nginx', 'hub/nginx')()));
    expect(JSON.parse(out)).toEqual({ name: 'hub/nginx', tags: ['1', 'ü'.repeat(3000)] });
  });
});

describe('canonical repository names', () => {
  const D = `sha256:${'a'.repeat(64)}`;
  const cache = { name: 'hub', prefix: 'hub/', url: 'http://127.0.0.1:5000', registry: 'docker.io' };
  const list = [hub, quay, local].map((t) => ({ url: t.url, registry: t.registry, prefix: t.prefix }));

  it.each([
    // [upstreams, client name, canonical]
    [list, 'hub/nginx', 'hub/library/nginx'],
    [list, 'hub/library/nginx', 'hub/library/nginx'],
    [list, 'hub/bitnami/redis', 'hub/bitnami/redis'],
    [list, 'quay/app', 'quay/app'],
    [list, 'nginx', 'nginx'],
    [[cache], 'hub/nginx', 'hub/library/nginx'],
    [[{ ...cache, registry: 'ghcr.io' }], 'hub/nginx', 'hub/nginx'],
    // Docker Hub as the default upstream: `nginx` is `library/nginx` there too
    [[{ prefix: '', url: 'https://registry-1.docker.io' }], 'nginx', 'library/nginx'],
    [[{ prefix: '', url: 'http://127.0.0.1:5000', registry: 'docker.io' }], 'team/app', 'team/app'],
    [[], 'nginx', 'nginx'],
  ] as const)('%# %s → %s', (upstreams, name, canonical) => {
    expect(canonicalRepository(upstreams, name)).toBe(canonical);
    // idempotent: the canonical name is its own canonical form
    expect(canonicalRepository(upstreams, canonical)).toBe(canonical);
  });

  it('gives a route its canonical name in path, scopes and mount source, before authorization', () => {
    const r = canonicalRoute(targets, classify('GET', '/v2/hub/nginx/manifests/latest') as Route) as Route;
    expect(r).toMatchObject({ name: 'hub/library/nginx', path: '/v2/hub/library/nginx/manifests/latest' });
    expect(r.scopes.map(formatScope)).toEqual(['repository:hub/library/nginx:pull']);
    const mount = canonicalRoute(
      targets,
      classify('POST', '/v2/hub/app/blobs/uploads/', `mount=${D}&from=hub/base`) as Route,
    ) as Route;
    expect(mount).toMatchObject({
      name: 'hub/library/app',
      mountFrom: 'hub/library/base',
      query: `?mount=${encodeURIComponent(D)}&from=hub%2Flibrary%2Fbase`,
    });
    expect(mount.scopes.map(formatScope)).toEqual([
      'repository:hub/library/app:pull,push',
      'repository:hub/library/base:pull',
    ]);
    // a mount from the other spelling of the repository itself needs no second scope
    const self = canonicalRoute(
      targets,
      classify('POST', '/v2/hub/app/blobs/uploads/', `mount=${D}&from=hub/library/app`) as Route,
    ) as Route;
    expect(self.scopes.map(formatScope)).toEqual(['repository:hub/library/app:pull,push']);
    // names that are canonical already, and routes without a name, are returned as they are
    for (const path of ['/v2/hub/library/nginx/tags/list', '/v2/quay/app/tags/list', '/v2/_catalog', '/v2/']) {
      const route = classify('GET', path) as Route;
      expect(canonicalRoute(targets, route)).toBe(route);
    }
    // containerd's short name in mirror mode: ns adds the prefix, then the name is made canonical
    const ns = withNamespace(
      targets,
      classify('GET', '/v2/nginx/manifests/latest', 'ns=docker.io') as Route,
      'docker.io',
    ) as Route;
    expect((canonicalRoute(targets, ns) as Route).name).toBe('hub/library/nginx');
  });

  it('refuses a name too long once canonical, and drops a mount whose source would be', () => {
    const long = 'n'.repeat(251);
    expect(canonicalRoute(targets, classify('GET', `/v2/hub/${long}/manifests/latest`) as Route)).toBeInstanceOf(
      OciError,
    );
    const r = canonicalRoute(
      targets,
      classify('POST', '/v2/hub/a/b/blobs/uploads/', `mount=${D}&from=hub/${long}`) as Route,
    ) as Route;
    expect(r).toMatchObject({ name: 'hub/a/b', query: '', mountFrom: undefined });
    expect(r.scopes.map(formatScope)).toEqual(['repository:hub/a/b:pull,push']);
  });
});

describe('canonical names, built once per target list', () => {
  it('give what config/upstreams.ts canonicalRepository gives, for every target and on every call', () => {
    const list = targets.map((t) => ({ url: t.url, registry: t.registry, prefix: t.prefix }));
    const names = [
      'hub/nginx',
      'hub/library/nginx',
      'hub/org/app',
      'quay/nginx',
      'quay/org/app',
      'nginx',
      'hubx/app',
      'team/app',
    ];
    for (let round = 0; round < 2; round++) {
      for (const name of names) {
        const r = canonicalRoute(targets, classify('HEAD', `/v2/${name}/manifests/latest`) as Route) as Route;
        expect(r.name).toBe(canonicalRepository(list, name));
        expect(
          upstreamName(
            targets.find((t) => t === upstreamFor(targets, name))!,
            name,
          ),
        ).toBe(canonicalRepository(list, name).slice(upstreamFor(targets, name)!.prefix.length));
      }
    }
    // Docker Hub as the default upstream renames one-segment names; a plain registry renames none
    const hubDefault = [target('d', '', 'https://registry-1.docker.io')];
    expect((canonicalRoute(hubDefault, classify('HEAD', '/v2/nginx/manifests/1') as Route) as Route).name).toBe(
      'library/nginx',
    );
    expect((canonicalRoute([local], classify('HEAD', '/v2/nginx/manifests/1') as Route) as Route).name).toBe('nginx');
  });
});
