import { isLoopbackHost, urlHost } from './net.js';
import type { Config } from './types.js';

/** Why `serve` must not start with a config that loaded fine: pure checks on the whole Config. */

/**
 * Why `serve` must not start, having no way to accept any identity, or undefined. Without an
 * issuer (and not `anonymous`), every client would be refused while /readyz says ready. Call it
 * after the in-cluster issuer had its chance.
 */
export function missingIssuerProblem(
  config: Pick<Config, 'issuers' | 'anonymous' | 'dev' | 'file'>,
): string | undefined {
  if (config.issuers.length > 0 || config.anonymous || config.dev) return undefined;
  return (
    'no identity issuer is configured, so no client could ever get a token. Give one: ' +
    '--issuer <url> --audience <aud> [--issuer-name <name>] [--ca-file <file>] (an OIDC issuer), ' +
    `${config.file ? `an issuers: list in ${config.file}` : '--config <file> with an issuers: list'} (see docs/config-file.md), ` +
    "or --dev for a local trial with an embedded issuer. In a Kubernetes pod the cluster's own issuer is used automatically"
  );
}

/**
 * Why `serve` must not start with this listener and publicURL, or undefined. The token realm is
 * `<publicURL>/token`; derived from a wildcard or other non-loopback address it would read
 * `http://127.0.0.1:<port>/token`, and remote clients would send their identity token to whatever
 * listens on their own loopback. A configured publicURL, or a loopback-only listener, is fine.
 */
export function listenExposureProblem(
  config: Pick<Config, 'listen' | 'publicURL' | 'publicURLDerived'>,
): string | undefined {
  if (!config.publicURLDerived || isLoopbackHost(config.listen.host)) return undefined;
  const where = `${urlHost(config.listen.host)}:${config.listen.port}`;
  return (
    `is required when listening on ${where} (not a loopback address): without it clients would be told to fetch tokens from ${config.publicURL}/token, their own machine. ` +
    'Set publicURL (or --public-url) to the URL clients reach the proxy at, e.g. --public-url https://registry.example.com, or listen on loopback only (--listen 127.0.0.1:8080)'
  );
}
