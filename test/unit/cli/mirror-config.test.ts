import { describe, expect, it } from 'vitest';
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

  it('an http publicURL makes the mirror insecure; one with a path is refused', () => {
    const conf = registriesConf(buildConfig({ publicURL: 'http://127.0.0.1:8080', upstream: { url: 'https://ghcr.io' } }));
    expect(conf).toContain('[[registry.mirror]]\nlocation = "127.0.0.1:8080"\ninsecure = true\n');
    expect(conf).toContain('prefix = "ghcr.io"\nlocation = "ghcr.io"\n\n');
    expect(() => registriesConf(buildConfig({ publicURL: 'https://example.com/registry', upstream: { url: 'https://ghcr.io' } }))).toThrow(CliExit);
  });
});
