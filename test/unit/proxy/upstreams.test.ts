import { describe, expect, it } from 'vitest';
import { upstreamConfig } from '../../../src/config/load.js';
import { upstreamFor } from '../../../src/config/upstreams.js';
import { classify, type Route } from '../../../src/oci/route.js';
import { catalogName, clientPath, tagsNameRewrite, toUpstream, upstreamName, type Target } from '../../../src/proxy/upstreams.js';

const target = (name: string, prefix: string, url: string) => ({ name, prefix, upstream: upstreamConfig(url) }) as Target;
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
    const cache = { prefix: 'hub/', upstream: { ...upstreamConfig('http://cache:5000'), registry: 'docker.io' } };
    expect(upstreamName(cache, 'hub/nginx')).toBe('library/nginx');
    expect(upstreamName({ ...cache, upstream: { ...cache.upstream, registry: 'ghcr.io' } }, 'hub/nginx')).toBe('nginx');
  });

  it('translates path, scopes and mount source; a mount from another upstream is dropped', () => {
    const route = classify('POST', '/v2/hub/team/app/blobs/uploads/', `mount=sha256:${'a'.repeat(64)}&from=hub/team/base`) as Route;
    const up = toUpstream(targets, hub, route);
    expect(up.path).toBe('/v2/team/app/blobs/uploads/');
    expect(up.scopes.map((s) => s.name)).toEqual(['team/app', 'team/base']);
    expect(up.query).toBe(`?mount=sha256%3A${'a'.repeat(64)}&from=team%2Fbase`);
    const cross = toUpstream(targets, hub, classify('POST', '/v2/hub/team/app/blobs/uploads/', `mount=sha256:${'a'.repeat(64)}&from=quay/base`) as Route);
    expect(cross.query).toBe('');
    expect(cross.scopes.map((s) => s.name)).toEqual(['team/app']);
  });

  it('gives the upstream paths back with the prefix', () => {
    expect(clientPath('hub/')!('/v2/library/nginx/blobs/uploads/1')).toBe('/v2/hub/library/nginx/blobs/uploads/1');
    expect(clientPath('hub/')!('/v2/_catalog')).toBe('/v2/_catalog');
    expect(clientPath('')).toBeUndefined();
    // Docker Hub's short form: the request's own repository comes back by the name the client used.
    const short = clientPath('hub/', { upstream: 'library/nginx', client: 'hub/nginx' })!;
    expect(short('/v2/library/nginx/tags/list?n=10&last=b')).toBe('/v2/hub/nginx/tags/list?n=10&last=b');
    expect(short('/v2/library/nginx-other/tags/list')).toBe('/v2/hub/library/nginx-other/tags/list');
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
