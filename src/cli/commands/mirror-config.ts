import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import type { Config, UpstreamConfig } from '../../config/types.js';
import { canonicalRegistry, registryOf } from '../../config/upstreams.js';
import { CliExit } from '../exit.js';

/**
 * Where the client goes when the proxy is down: the upstream itself, or, for one standing in for
 * another registry (`registry:`, a pull-through cache), that registry as containerd would reach it
 * without a mirror, so the fallback never lands on the cache behind the proxy's back.
 */
function serverOf(u: UpstreamConfig): string {
  const registry = registryOf(u);
  if (registry === canonicalRegistry(new URL(u.url).host)) return u.url;
  return registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
}

/**
 * containerd `hosts.toml` files that send pulls of each configured upstream's images through the
 * proxy: `server` is the registry (used when the proxy is down), the proxy is a `pull`/`resolve`
 * mirror (never `push`: containerd pushes to the server). An upstream behind a prefix (`hub/`) is
 * reached at `<publicURL>/v2/hub` with `override_path`, so `docker.io/library/nginx` is asked for as
 * `hub/library/nginx`. One file per upstream, each headed by the path it belongs at. Pure.
 */
export function containerdHostsToml(config: Pick<Config, 'publicURL' | 'upstream' | 'upstreams'>, certsDir = '/etc/containerd/certs.d'): string {
  const upstreams = config.upstreams ?? (config.upstream ? [{ ...config.upstream, name: 'default', prefix: '' }] : []);
  const base = config.publicURL.replace(/\/+$/, '');
  return upstreams
    .map((u) => {
      const prefix = u.prefix.replace(/\/+$/, '');
      const viaPath = prefix !== '' || new URL(base).pathname !== '/';
      const host = viaPath ? `${base}/v2${prefix ? `/${prefix}` : ''}` : base;
      return [
        `# ${certsDir}/${registryOf(u)}/hosts.toml  (upstream "${u.name}"${prefix ? `, prefix ${u.prefix}` : ''})`,
        `server = "${serverOf(u)}"`,
        '',
        `[host."${host}"]`,
        '  capabilities = ["pull", "resolve"]',
        ...(viaPath ? ['  override_path = true'] : []),
        '',
      ].join('\n');
    })
    .join('\n');
}

/**
 * podman/CRI-O `registries.conf` entries doing the same: each upstream's registry (by the name
 * images use, `docker.io`) gets the proxy as a mirror, its prefix as the mirror's namespace
 * (`docker.io/library/nginx` → `<proxy>/hub/library/nginx`); `insecure` where the URL is http.
 * A publicURL with a path cannot be a registries.conf mirror (a location has no API path). Pure.
 */
export function registriesConf(config: Pick<Config, 'publicURL' | 'upstream' | 'upstreams'>): string {
  const upstreams = config.upstreams ?? (config.upstream ? [{ ...config.upstream, name: 'default', prefix: '' }] : []);
  const proxy = new URL(config.publicURL);
  if (proxy.pathname.replace(/\/+$/, '') !== '') throw new CliExit(2, 'mirror-config: registries.conf mirrors cannot reach a publicURL with a path');
  return upstreams
    .map((u) => {
      const registry = registryOf(u);
      const prefix = u.prefix.replace(/\/+$/, '');
      return [
        `# upstream "${u.name}"${prefix ? `, prefix ${u.prefix}` : ''}`,
        '[[registry]]',
        `prefix = "${registry}"`,
        `location = "${registry}"`,
        ...(new URL(serverOf(u)).protocol === 'http:' ? ['insecure = true'] : []),
        '',
        '[[registry.mirror]]',
        `location = "${proxy.host}${prefix ? `/${prefix}` : ''}"`,
        ...(proxy.protocol === 'http:' ? ['insecure = true'] : []),
        '',
      ].join('\n');
    })
    .join('\n');
}

const FORMATS = ['containerd', 'registries.conf'] as const;

export function register(program: Command): void {
  program
    .command('mirror-config')
    .description('print containerd hosts.toml (or podman/CRI-O registries.conf) entries that make the proxy a pull mirror of each configured upstream')
    .option('--config <file>', 'config file (default: RAP_CONFIG)')
    .option('--format <format>', `${FORMATS.join(' | ')}`, 'containerd')
    .option('--certs-dir <dir>', "containerd's config_path, for the file names printed", '/etc/containerd/certs.d')
    .action((opts: { config?: string; certsDir: string; format: string }) => {
      if (!(FORMATS as readonly string[]).includes(opts.format)) throw new CliExit(2, `--format must be one of ${FORMATS.join(', ')}`);
      const config = loadConfig({ config: opts.config });
      if (!config.upstream && !config.upstreams?.length) throw new CliExit(2, 'mirror-config: the config names no upstream');
      process.stdout.write(opts.format === 'containerd' ? containerdHostsToml(config, opts.certsDir) : registriesConf(config));
    });
}
