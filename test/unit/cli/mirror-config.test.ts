import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';
import { containerdHostsToml, registriesConf } from '../../../src/cli/commands/mirror-config.js';
import { CliExit } from '../../../src/cli/exit.js';

describe('mirror-config: containerd hosts.toml for the configured upstreams', () => {
  it('one upstream: the proxy is a pull/resolve mirror of it, reached at its /v2/ as containerd expects', () => {
    const config = buildConfig({ publicURL: 'https://proxy.example.com', upstream: { url: 'https://europe-west1-docker.pkg.dev', auth: { type: 'gar' } } });
    expect(containerdHostsToml(config)).toBe(
      [
        '# /etc/containerd/certs.d/europe-west1-docker.pkg.dev/hosts.toml  (upstream "default")',
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
        'server = "https://registry-1.docker.io"',
        '',
        '[host."https://proxy.example.com/v2/hub"]',
        '  capabilities = ["pull", "resolve"]',
        '  override_path = true',
        '',
      ].join('\n'),
    );
    expect(toml).toContain(
      '# /etc/k3s/certs.d/127.0.0.1:5000/hosts.toml  (upstream "local")\nserver = "http://127.0.0.1:5000"\n\n[host."https://proxy.example.com"]\n',
    );
    expect(toml).not.toContain('push');
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
    const toml = containerdHostsToml(config);
    expect(toml).toContain(
      '# /etc/containerd/certs.d/docker.io/hosts.toml  (upstream "hub", prefix hub/)\nserver = "https://registry-1.docker.io"\n\n[host."https://proxy.example.com/v2/hub"]\n',
    );
    expect(toml).toContain('# /etc/containerd/certs.d/ghcr.io/hosts.toml  (upstream "gh", prefix gh/)\nserver = "https://ghcr.io"\n');
    // the registry is the URL's own host: the server stays the URL
    expect(toml).toContain('# /etc/containerd/certs.d/127.0.0.1:5000/hosts.toml  (upstream "local")\nserver = "http://127.0.0.1:5000"\n');
    expect(toml).not.toContain('cache.internal');
  });

  it("README's pull-through cache snippet is filed under docker.io", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = readme.slice(readme.indexOf('# the cache: Distribution')).split('```')[0]!;
    const proxyDoc = parseAllDocuments(block)[1]!.toJS() as object;
    const toml = containerdHostsToml(buildConfig({ publicURL: 'https://proxy.example.com', ...proxyDoc }));
    expect(toml).toContain('certs.d/docker.io/hosts.toml  (upstream "hub", prefix hub/)\nserver = "https://registry-1.docker.io"\n');
  });

  it('refuses a registry that is not a host', () => {
    for (const registry of ['https://docker.io', 'docker.io/library', ''])
      expect(() => buildConfig({ publicURL: 'https://p.example.com', upstream: { url: 'http://cache:5000', registry } })).toThrow(/upstream\.registry/);
  });
});

describe('mirror-config --format registries.conf: podman/CRI-O mirrors', () => {
  const upstreams = [
    { name: 'hub', prefix: 'hub/', url: 'https://registry-1.docker.io' },
    { name: 'local', url: 'http://127.0.0.1:5000' },
  ];

  it('each upstream registry gets the proxy as a mirror; a prefix becomes the mirror namespace', () => {
    const conf = registriesConf(buildConfig({ publicURL: 'https://proxy.example.com/', upstreams }));
    expect(conf).toBe(
      [
        '# upstream "hub", prefix hub/',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        '',
        '[[registry.mirror]]',
        'location = "proxy.example.com/hub"',
        '',
        '# upstream "local"',
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
    );
    expect(conf).toBe(
      [
        '# upstream "hub", prefix hub/',
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

  it('an http publicURL makes the mirror insecure; one with a path is refused', () => {
    const conf = registriesConf(buildConfig({ publicURL: 'http://127.0.0.1:8080', upstream: { url: 'https://ghcr.io' } }));
    expect(conf).toContain('[[registry.mirror]]\nlocation = "127.0.0.1:8080"\ninsecure = true\n');
    expect(conf).toContain('prefix = "ghcr.io"\nlocation = "ghcr.io"\n\n');
    expect(() => registriesConf(buildConfig({ publicURL: 'https://example.com/registry', upstream: { url: 'https://ghcr.io' } }))).toThrow(CliExit);
  });
});
