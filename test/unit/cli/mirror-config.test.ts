import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { containerdHostsToml, registriesConf } from '../../../src/cli/commands/mirror-config.js';
import { CliExit } from '../../../src/cli/exit.js';

describe('mirror-config: containerd hosts.toml for the configured upstreams', () => {
  it('one upstream: the proxy is the only server and the only host, for pull/resolve; the upstream is named nowhere', () => {
    const config = buildConfig({
      publicURL: 'https://proxy.example.com',
      upstream: { url: 'https://europe-west1-docker.pkg.dev', auth: { type: 'gar' } },
    });
    const toml = containerdHostsToml(config);
    expect(toml).toBe(
      [
        '# /etc/containerd/certs.d/europe-west1-docker.pkg.dev/hosts.toml  (upstream "default")',
        '# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.',
        'server = "https://proxy.example.com"',
        'capabilities = ["pull", "resolve"]',
        '',
        '[host."https://proxy.example.com"]',
        '  capabilities = ["pull", "resolve"]',
        '',
      ].join('\n'),
    );
    // containerd falls back to the `server` when every [host] fails: it must be the proxy too
    expect(toml).not.toContain('europe-west1-docker.pkg.dev"');
  });

  it('--fallback-to-upstream: the upstream is the server, the proxy a pull/resolve mirror tried first, and the file says what that gives up', () => {
    const config = buildConfig({
      publicURL: 'https://proxy.example.com',
      upstream: { url: 'https://europe-west1-docker.pkg.dev', auth: { type: 'gar' } },
    });
    expect(containerdHostsToml(config, undefined, { fallbackToUpstream: true })).toBe(
      [
        '# /etc/containerd/certs.d/europe-west1-docker.pkg.dev/hosts.toml  (upstream "default")',
        '# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.',
        'server = "https://europe-west1-docker.pkg.dev"',
        '',
        '[host."https://proxy.example.com"]',
        '  capabilities = ["pull", "resolve"]',
        '',
      ].join('\n'),
    );
  });

  it('several upstreams: a prefixed one is reached under /v2/<prefix> with override_path; Docker Hub is docker.io', () => {
    const config = buildConfig({
      publicURL: 'https://proxy.example.com/',
      upstreams: [
        { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' },
        { name: 'local', url: 'http://127.0.0.1:5000' },
      ],
    });
    const toml = containerdHostsToml(config, '/etc/k3s/certs.d');
    expect(toml).toContain(
      [
        '# /etc/k3s/certs.d/docker.io/hosts.toml  (upstream "hub", prefix hub/)',
        '# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.',
        'server = "https://proxy.example.com/v2/hub"',
        'capabilities = ["pull", "resolve"]',
        'override_path = true',
        '',
        '[host."https://proxy.example.com/v2/hub"]',
        '  capabilities = ["pull", "resolve"]',
        '  override_path = true',
        '',
      ].join('\n'),
    );
    expect(toml).toContain(
      '# /etc/k3s/certs.d/127.0.0.1:5000/hosts.toml  (upstream "local")\n# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.\nserver = "https://proxy.example.com"\n',
    );
    expect(toml).not.toContain('push');
    expect(toml).not.toContain('registry-1.docker.io');
    expect(toml).not.toContain('5000"');
    const fallback = containerdHostsToml(config, '/etc/k3s/certs.d', { fallbackToUpstream: true });
    expect(fallback).toContain(
      'server = "https://registry-1.docker.io"\n\n[host."https://proxy.example.com/v2/hub"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n',
    );
    expect(fallback).toContain('server = "http://127.0.0.1:5000"\n\n[host."https://proxy.example.com"]\n');
  });

  it('an upstream with `registry` (a pull-through cache) is filed under that registry, which is also the server', () => {
    const config = buildConfig({
      publicURL: 'https://proxy.example.com',
      upstreams: [
        { name: 'hub', prefix: 'hub/', url: 'http://hub-cache.internal:5000', registry: 'docker.io' },
        { name: 'gh', prefix: 'gh/', url: 'http://ghcr-cache.internal:5000', registry: 'ghcr.io' },
        { name: 'local', url: 'http://127.0.0.1:5000', registry: '127.0.0.1:5000' },
      ],
    });
    expect(containerdHostsToml(config)).toContain(
      '# /etc/containerd/certs.d/ghcr.io/hosts.toml  (upstream "gh", prefix gh/)\n',
    );
    const toml = containerdHostsToml(config, undefined, { fallbackToUpstream: true });
    expect(toml).toContain(
      '# /etc/containerd/certs.d/docker.io/hosts.toml  (upstream "hub", prefix hub/)\n# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.\nserver = "https://registry-1.docker.io"\n\n[host."https://proxy.example.com/v2/hub"]\n',
    );
    expect(toml).toContain(
      '# /etc/containerd/certs.d/ghcr.io/hosts.toml  (upstream "gh", prefix gh/)\n# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.\nserver = "https://ghcr.io"\n',
    );
    // the registry is the URL's own host: the server stays the URL
    expect(toml).toContain(
      '# /etc/containerd/certs.d/127.0.0.1:5000/hosts.toml  (upstream "local")\n# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.\nserver = "http://127.0.0.1:5000"\n',
    );
    expect(toml).not.toContain('cache.internal');
  });

  it("docs/upstreams.md's pull-through cache snippet is filed under docker.io", () => {
    const doc = readFileSync(new URL('../../../docs/upstreams.md', import.meta.url), 'utf8');
    const block = doc.slice(doc.indexOf('# the cache: Distribution'));
    const proxyDoc = parse(block.slice(block.indexOf('# the proxy')).split('```')[0]!) as object;
    const toml = containerdHostsToml(buildConfig({ publicURL: 'https://proxy.example.com', ...proxyDoc }));
    expect(toml).toContain(
      'certs.d/docker.io/hosts.toml  (upstream "hub", prefix hub/)\n# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.\nserver = "https://proxy.example.com/v2/hub"\n',
    );
  });

  it('refuses a registry that is not a host', () => {
    for (const registry of ['https://docker.io', 'docker.io/library', ''])
      expect(() =>
        buildConfig({ publicURL: 'https://p.example.com', upstream: { url: 'http://cache:5000', registry } }),
      ).toThrow(/upstream\.registry/);
  });
});

describe('mirror-config --format registries.conf: podman/CRI-O mirrors', () => {
  const upstreams = [
    { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' },
    { name: 'local', url: 'http://127.0.0.1:5000' },
  ];

  it('each upstream registry is relocated to the proxy, with no other location; a prefix becomes the namespace', () => {
    const conf = registriesConf(buildConfig({ publicURL: 'https://proxy.example.com/', upstreams }));
    expect(conf).toBe(
      [
        '# upstream "hub", prefix hub/',
        '# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "proxy.example.com/hub"',
        '',
        '# upstream "local"',
        '# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.',
        '[[registry]]',
        'prefix = "127.0.0.1:5000"',
        'location = "proxy.example.com"',
        '',
      ].join('\n'),
    );
    expect(conf).not.toContain('[[registry.mirror]]');
  });

  it('--fallback-to-upstream: the proxy is a mirror, the registry the location tried when it fails', () => {
    const conf = registriesConf(buildConfig({ publicURL: 'https://proxy.example.com/', upstreams }), {
      fallbackToUpstream: true,
    });
    expect(conf).toBe(
      [
        '# upstream "hub", prefix hub/',
        '# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        '',
        '[[registry.mirror]]',
        'location = "proxy.example.com/hub"',
        '',
        '# upstream "local"',
        '# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.',
        '[[registry]]',
        'prefix = "127.0.0.1:5000"',
        'location = "127.0.0.1:5000"',
        'insecure = true',
        '',
        '[[registry.mirror]]',
        'location = "proxy.example.com"',
        '',
      ].join('\n'),
    );
  });

  it('an upstream with `registry` is the mirror of that registry, secure as the registry is, whatever the cache speaks', () => {
    const conf = registriesConf(
      buildConfig({
        publicURL: 'https://proxy.example.com',
        upstreams: [{ name: 'hub', prefix: 'hub/', url: 'http://hub-cache.internal:5000', registry: 'docker.io' }],
      }),
      { fallbackToUpstream: true },
    );
    expect(conf).toBe(
      [
        '# upstream "hub", prefix hub/',
        '# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        '',
        '[[registry.mirror]]',
        'location = "proxy.example.com/hub"',
        '',
      ].join('\n'),
    );
  });

  it('an http publicURL makes the proxy insecure; one with a path is refused', () => {
    const config = buildConfig({ publicURL: 'http://127.0.0.1:8080', upstream: { url: 'https://ghcr.io' } });
    expect(registriesConf(config)).toContain('prefix = "ghcr.io"\nlocation = "127.0.0.1:8080"\ninsecure = true\n');
    const conf = registriesConf(config, { fallbackToUpstream: true });
    expect(conf).toContain('[[registry.mirror]]\nlocation = "127.0.0.1:8080"\ninsecure = true\n');
    expect(conf).toContain('prefix = "ghcr.io"\nlocation = "ghcr.io"\n\n');
    expect(() =>
      registriesConf(buildConfig({ publicURL: 'https://example.com/registry', upstream: { url: 'https://ghcr.io' } })),
    ).toThrow(CliExit);
  });
});
