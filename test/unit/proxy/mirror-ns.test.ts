import { describe, expect, it } from 'vitest';
import { OciError } from '../../../src/oci/errors.js';
import { classify, type Route } from '../../../src/oci/route.js';
import { withNamespace } from '../../../src/proxy/upstreams.js';

/** containerd's `?ns=`: the upstream by its host among the configured ones, the name made that upstream's. */
const target = (prefix: string, url: string) => ({ prefix, url });
const targets = [
  target('hub/', 'https://registry-1.docker.io'),
  target('', 'http://127.0.0.1:5000'),
  target('q/', 'https://quay.io'),
];
const route = (path: string, query = '') => classify('GET', path, query) as Route;

describe('withNamespace', () => {
  it('ns=docker.io is the upstream at registry-1.docker.io: its prefix is added to path and scopes', () => {
    const r = withNamespace(targets, route('/v2/library/nginx/manifests/latest', 'ns=docker.io'), 'docker.io') as Route;
    expect(r).toMatchObject({ name: 'hub/library/nginx', path: '/v2/hub/library/nginx/manifests/latest', query: '' });
    expect(r.scopes).toEqual([{ type: 'repository', name: 'hub/library/nginx', actions: ['pull'] }]);
  });

  it('host:port names the default upstream; a name already routed there is unchanged', () => {
    const r = route('/v2/team/app/blobs/sha256:' + 'a'.repeat(64));
    expect(withNamespace(targets, r, '127.0.0.1:5000')).toBe(r);
    const prefixed = route('/v2/hub/library/nginx/manifests/latest');
    expect(withNamespace(targets, prefixed, 'DOCKER.IO')).toBe(prefixed);
  });

  it('an upstream with `registry` (a pull-through cache) is selected by that registry only, never by its own host', () => {
    const cache = { prefix: 'hub/', url: 'http://cache:5000', registry: 'docker.io' };
    const ghcr = { prefix: 'gh/', url: 'http://ghcr-cache.internal:5000', registry: 'GHCR.io' };
    const list = [cache, ghcr, target('', 'http://127.0.0.1:5000')];
    for (const [ns, name] of [
      ['docker.io', 'hub/library/nginx'],
      ['registry-1.docker.io', 'hub/library/nginx'],
      ['ghcr.io', 'gh/library/nginx'],
    ] as const) {
      expect(withNamespace(list, route('/v2/library/nginx/manifests/latest'), ns)).toMatchObject({
        name,
        path: `/v2/${name}/manifests/latest`,
      });
    }
    for (const ns of ['cache:5000', 'ghcr-cache.internal:5000']) {
      expect((withNamespace(list, route('/v2/library/nginx/manifests/latest'), ns) as OciError).code).toBe(
        'NAME_UNKNOWN',
      );
    }
  });

  it('an unknown ns, or a name that cannot reach the named upstream, is NAME_UNKNOWN; no ns changes nothing', () => {
    for (const [path, ns] of [
      ['/v2/team/app/manifests/latest', 'ghcr.io'],
      ['/v2/hub/x/manifests/latest', '127.0.0.1:5000'],
    ] as const) {
      const e = withNamespace(targets, route(path), ns);
      expect(e).toBeInstanceOf(OciError);
      expect((e as OciError).code).toBe('NAME_UNKNOWN');
    }
    const r = route('/v2/team/app/manifests/latest');
    expect(withNamespace(targets, r, null)).toBe(r);
    expect(route('/v2/team/app/tags/list', 'n=5&ns=docker.io').query).toBe('?n=5');
  });
});
