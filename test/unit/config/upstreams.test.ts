import { describe, expect, it } from 'vitest';
import { buildConfig, extendConfig, upstreamConfig, type ServeFlags } from '../../../src/config/load.js';
import { upstreamNameOf } from '../../../src/config/upstreams.js';

/**
 * The config's one list of upstreams: every shape a user can write (`upstream:`, `upstreams:`,
 * both, `--upstream`, `RAP_UPSTREAM` with --dev, nothing) becomes `upstreams` with names and
 * prefixes, and `request.upstream` is what users saw before the list (docs/policies.md: "" with a lone `upstream:`).
 */

const hub = { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' };
const local = { name: 'local', url: 'http://local:5000' };

describe('config: one list of upstreams', () => {
  // [what the user wrote, file, flags, env, [name, prefix, url] of each entry, request.upstream of `app` and `hub/x`]
  const cases: [
    string,
    Record<string, unknown>,
    ServeFlags,
    NodeJS.ProcessEnv,
    [string, string, string][],
    [string, string],
  ][] = [
    ['nothing', {}, {}, {}, [], ['', '']],
    ['upstream:', { upstream: { url: 'http://a' } }, {}, {}, [['', '', 'http://a']], ['', '']],
    ['--upstream', {}, { upstream: 'http://b' }, {}, [['', '', 'http://b']], ['', '']],
    [
      '--upstream over upstream.url',
      { upstream: { url: 'http://a' } },
      { upstream: 'http://b' },
      {},
      [['', '', 'http://b']],
      ['', ''],
    ],
    ['RAP_UPSTREAM with --dev', {}, { dev: true }, { RAP_UPSTREAM: 'http://e' }, [['', '', 'http://e']], ['', '']],
    ['RAP_UPSTREAM without --dev', {}, {}, { RAP_UPSTREAM: 'http://e' }, [], ['', '']],
    ['upstreams: prefixed only', { upstreams: [hub] }, {}, {}, [['hub', 'hub/', hub.url]], ['', 'hub']],
    [
      'upstreams: with a default entry',
      { upstreams: [local, hub] },
      {},
      {},
      [
        ['local', '', local.url],
        ['hub', 'hub/', hub.url],
      ],
      ['local', 'hub'],
    ],
    [
      'upstream: beside upstreams: is named default',
      { upstream: { url: 'http://a' }, upstreams: [hub] },
      {},
      {},
      [
        ['default', '', 'http://a'],
        ['hub', 'hub/', hub.url],
      ],
      ['default', 'hub'],
    ],
    [
      '--upstream beside upstreams:',
      { upstreams: [hub] },
      { upstream: 'http://b' },
      {},
      [
        ['default', '', 'http://b'],
        ['hub', 'hub/', hub.url],
      ],
      ['default', 'hub'],
    ],
    [
      'upstream: beside an empty upstreams:',
      { upstream: { url: 'http://a' }, upstreams: [] },
      {},
      {},
      [['default', '', 'http://a']],
      ['default', 'default'],
    ],
  ];
  it.each(cases)('%s', (_what, file, flags, env, entries, [plain, prefixed]) => {
    const config = buildConfig(file, flags, 'rap.yaml', env);
    expect(config.upstreams.map((u) => [u.name, u.prefix, u.url])).toEqual(entries);
    const nameOf = upstreamNameOf(config.upstreams);
    expect([nameOf('app'), nameOf('hub/x')]).toEqual([plain, prefixed]);
  });

  it('both shapes claiming the default, or the name default twice, are refused', () => {
    expect(() => buildConfig({ upstream: { url: 'http://a' }, upstreams: [local] })).toThrow(/both the default/);
    expect(() => buildConfig({ upstream: { url: 'http://a' }, upstreams: [{ ...hub, name: 'default' }] })).toThrow(
      /"default" is upstream's/,
    );
  });

  it('the dev registry joins the list as its default: unnamed alone, `default` beside prefixed upstreams', () => {
    const dev = upstreamConfig('http://127.0.0.1:5000');
    expect(extendConfig(buildConfig({}), { upstream: dev }).upstreams.map((u) => [u.name, u.prefix])).toEqual([
      ['', ''],
    ]);
    expect(
      extendConfig(buildConfig({ upstreams: [hub] }), { upstream: dev }).upstreams.map((u) => [u.name, u.prefix]),
    ).toEqual([
      ['default', ''],
      ['hub', 'hub/'],
    ]);
  });

  it('the idle cut is checked against the slowest upstream, whichever shape it came in', () => {
    expect(() => buildConfig({ upstream: { url: 'http://a', timeout: '10m' }, limits: { idleTimeout: '5m' } })).toThrow(
      /idleTimeout/,
    );
    expect(() =>
      buildConfig({
        upstream: { url: 'http://a' },
        upstreams: [{ ...hub, timeout: '10m' }],
        limits: { idleTimeout: '5m' },
      }),
    ).toThrow(/idleTimeout/);
    expect(buildConfig({ upstreams: [{ ...hub, timeout: '4m' }] }).limits.idleTimeout).toBe(480_000);
  });
});
