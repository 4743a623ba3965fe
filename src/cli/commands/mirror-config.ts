import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import type { Config, UpstreamConfig } from '../../config/types.js';
import { canonicalRegistry, registryOf } from '../../config/upstreams.js';
import { CliExit } from '../exit.js';

/**
 * The registry itself, as containerd or podman would reach it without a mirror: the upstream, or,
 * for one standing in for another registry (`registry:`, a pull-through cache), that registry, so a
 * fallback never lands on the cache behind the proxy's back.
 */
function serverOf(u: UpstreamConfig): string {
  const registry = registryOf(u);
  if (registry === canonicalRegistry(new URL(u.url).host)) return u.url;
  return registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
}

export interface MirrorOptions {
  /**
   * Let clients go to the registry itself while the proxy is down. Off by default: those pulls are
   * outside the proxy's policy, audit and limits, and use whatever credentials the node has.
   */
  fallbackToUpstream?: boolean;
}

const ONLY_SERVER = '# The proxy is the only server: while it is down, pulls fail rather than bypass its policy.';
const FALLBACK =
  '# --fallback-to-upstream: while the proxy is down, pulls go straight to the registry, bypassing the proxy and its policy.';

/** The name a heading shows: a lone `upstream:` (unnamed) is the default. */
const shown = (name: string): string => name || 'default';

/**
 * containerd `hosts.toml` files that send pulls of each configured upstream's images through the
 * proxy, for `pull`/`resolve` only (the files are for pulls). By default the proxy is both the one
 * `[host]` and the `server`, so nothing else is ever tried: containerd falls back to the `server`
 * when the hosts fail, and a file without a `[host]` section is ignored by containerd 1.6 (it then
 * goes to the registry itself). With `fallbackToUpstream` the registry is the `server`. An upstream
 * behind a prefix (`hub/`) is reached at `<publicURL>/v2/hub` with `override_path`, so
 * `docker.io/library/nginx` is asked for as `hub/library/nginx`. One file per upstream, each
 * headed by the path it belongs at. Pure.
 */
export function containerdHostsToml(
  config: Pick<Config, 'publicURL' | 'upstreams'>,
  certsDir = '/etc/containerd/certs.d',
  o: MirrorOptions = {},
): string {
  const base = config.publicURL.replace(/\/+$/, '');
  return config.upstreams
    .map((u) => {
      const prefix = u.prefix.replace(/\/+$/, '');
      const viaPath = prefix !== '' || new URL(base).pathname !== '/';
      const host = viaPath ? `${base}/v2${prefix ? `/${prefix}` : ''}` : base;
      const proxyHost = ['capabilities = ["pull", "resolve"]', ...(viaPath ? ['override_path = true'] : [])];
      const server = o.fallbackToUpstream
        ? [FALLBACK, `server = "${serverOf(u)}"`]
        : [ONLY_SERVER, `server = "${host}"`, ...proxyHost];
      return [
        `# ${certsDir}/${registryOf(u)}/hosts.toml  (upstream "${shown(u.name)}"${prefix ? `, prefix ${u.prefix}` : ''})`,
        ...server,
        '',
        `[host."${host}"]`,
        ...proxyHost.map((l) => `  ${l}`),
        '',
      ].join('\n');
    })
    .join('\n');
}

/**
 * podman/CRI-O `registries.conf` entries doing the same: each upstream's registry (by the name
 * images use, `docker.io`) is relocated to the proxy, its prefix as the namespace
 * (`docker.io/library/nginx` → `<proxy>/hub/library/nginx`), `insecure` where the proxy is http.
 * With `fallbackToUpstream` the proxy is a mirror instead, and the registry the location tried
 * when it fails. A publicURL with a path cannot be a location (a location has no API path). Pure.
 */
export function registriesConf(config: Pick<Config, 'publicURL' | 'upstreams'>, o: MirrorOptions = {}): string {
  const proxy = new URL(config.publicURL);
  if (proxy.pathname.replace(/\/+$/, '') !== '')
    throw new CliExit(2, 'mirror-config: registries.conf cannot reach a publicURL with a path');
  const insecureProxy = proxy.protocol === 'http:' ? ['insecure = true'] : [];
  return config.upstreams
    .map((u) => {
      const registry = registryOf(u);
      const prefix = u.prefix.replace(/\/+$/, '');
      const heading = `# upstream "${shown(u.name)}"${prefix ? `, prefix ${u.prefix}` : ''}`;
      const atProxy = `location = "${proxy.host}${prefix ? `/${prefix}` : ''}"`;
      if (!o.fallbackToUpstream)
        return [heading, ONLY_SERVER, '[[registry]]', `prefix = "${registry}"`, atProxy, ...insecureProxy, ''].join(
          '\n',
        );
      return [
        heading,
        FALLBACK,
        '[[registry]]',
        `prefix = "${registry}"`,
        `location = "${registry}"`,
        ...(new URL(serverOf(u)).protocol === 'http:' ? ['insecure = true'] : []),
        '',
        '[[registry.mirror]]',
        atProxy,
        ...insecureProxy,
        '',
      ].join('\n');
    })
    .join('\n');
}

const FORMATS = ['containerd', 'registries.conf'] as const;

export function register(program: Command): void {
  program
    .command('mirror-config')
    .description(
      'print containerd hosts.toml (or podman/CRI-O registries.conf) entries that make the proxy a pull mirror of each configured upstream',
    )
    .option('--config <file>', 'config file (default: RAP_CONFIG)')
    .option('--format <format>', `${FORMATS.join(' | ')}`, 'containerd')
    .option('--certs-dir <dir>', "containerd's config_path, for the file names printed", '/etc/containerd/certs.d')
    .option(
      '--fallback-to-upstream',
      'let clients pull straight from the upstream while the proxy is down: those pulls bypass the proxy and its policy, audit and limits',
    )
    .action((opts: { config?: string; certsDir: string; format: string; fallbackToUpstream?: boolean }) => {
      if (!(FORMATS as readonly string[]).includes(opts.format))
        throw new CliExit(2, `--format must be one of ${FORMATS.join(', ')}`);
      const config = loadConfig({ config: opts.config });
      if (config.upstreams.length === 0) throw new CliExit(2, 'mirror-config: the config names no upstream');
      const o = { fallbackToUpstream: opts.fallbackToUpstream === true };
      process.stdout.write(
        opts.format === 'containerd' ? containerdHostsToml(config, opts.certsDir, o) : registriesConf(config, o),
      );
    });
}
