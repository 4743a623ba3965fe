import { basename } from 'node:path';
import { isLoopbackHost } from '../config/load.js';

/** A word the shell reads back unchanged: bare when safe, else single-quoted. Pure. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * How the reader runs this CLI again: by name when it was started through the installed command
 * (npm install -g / npm link put it on PATH), else the script's absolute path. Pure.
 */
export function cliInvocation(script: string = process.argv[1] ?? 'registry-auth-proxy'): string {
  return basename(script) === 'registry-auth-proxy' ? 'registry-auth-proxy' : `node ${shellQuote(script)}`;
}

interface BannerInput {
  publicURL: string;
  tokenFile: string;
  subject: string;
  expiresAt: number;
  upstream: string;
  /** The embedded registry's storage, when `--dev` runs one. */
  embeddedData?: string;
  /** An image that exists upstream (the seeded demo), `repo:tag`. */
  demoRef?: string;
  /** How to run this CLI again, e.g. `registry-auth-proxy` or `node /path/bin/registry-auth-proxy.js`. */
  cli: string;
  /** Extra `verify --dev` arguments (a non-default state directory). */
  verifyArgs: string[];
}

/**
 * What `--dev` prints once it is ready: where things are and commands that work when pasted as
 * printed (never the token itself: it is read from the file, so it stays out of scrollback and logs).
 * Pure.
 */
export function devBanner(b: BannerInput): string {
  const url = new URL(b.publicURL);
  const host = url.host;
  const plain = url.protocol === 'http:';
  const tls = plain ? ' --tls-verify=false' : '';
  const tokenFile = shellQuote(b.tokenFile);
  const src = b.demoRef ? `${host}/${b.demoRef}` : undefined;
  const dst = `${host}/demo/copy:latest`;
  // podman and skopeo first: containers/common refuses `login` while the only stored login for
  // the registry is Docker's identity token ("currently logged in, auth file contains an Identity token").
  const lines = [
    '',
    'registry-auth-proxy --dev: NOT FOR PRODUCTION (embedded issuer, allow-all dev policy)',
    `  proxy:    ${b.publicURL}`,
    `  upstream: ${b.upstream}${b.embeddedData ? ` (embedded Distribution registry, data in ${b.embeddedData})` : ''}`,
    `  token:    ${b.tokenFile}`,
    `            identity token of "${b.subject}", valid until ${new Date(b.expiresAt * 1000).toISOString()}: the registry password`,
    '',
    'podman:',
    `  podman login${tls} ${host} -u dev --password-stdin < ${tokenFile}`,
    ...(src
      ? [`  podman pull${tls} ${src}`, `  podman push${tls} ${src} ${dst}`]
      : [`  podman push${tls} <local-image> ${dst}`]),
    'skopeo:',
    `  skopeo login${tls} ${host} -u dev --password-stdin < ${tokenFile}`,
    src
      ? `  skopeo copy${plain ? ' --src-tls-verify=false --dest-tls-verify=false' : ''} docker://${src} docker://${dst}`
      : `  skopeo copy${plain ? ' --dest-tls-verify=false' : ''} oci:<layout-dir> docker://${dst}`,
    'Docker:',
    `  docker login ${host} -u dev --password-stdin < ${tokenFile}`,
    ...(src
      ? [`  docker pull ${src}`, `  docker tag ${src} ${dst}`, `  docker push ${dst}`]
      : [`  docker tag <local-image> ${dst} && docker push ${dst}`]),
    ...(plain && !isLoopbackHost(url.hostname)
      ? [`  (plain HTTP: Docker needs "insecure-registries": ["${host}"] in /etc/docker/daemon.json)`]
      : []),
    'Check the token:',
    `  ${[b.cli, 'verify', '--dev', ...b.verifyArgs.map(shellQuote), '-'].join(' ')} < ${tokenFile}`,
    '',
  ];
  return lines.join('\n');
}
