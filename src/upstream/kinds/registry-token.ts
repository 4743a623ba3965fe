import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../../config/types.js';
import type { Logger } from '../../log.js';
import { tokenDance } from '../token-dance.js';
import type { UpstreamAuth, UpstreamHttp } from '../types.js';

type RegistryTokenAuth = Extract<UpstreamConfig['auth'], { type: 'registry-token' }>;

/** A secret file's content without its final newline, read for each use (rotation). */
export function readSecret(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/**
 * The upstream's own Bearer challenge (Harbor, Docker Hub, Distribution in token mode): the token
 * dance with the configured username and password. `auth.realm` wins over the advertised realm
 * (Harbor advertises http:// behind TLS, or its in-cluster service name); an advertised realm on
 * another origin than the upstream's must be on a host listed in `realmHosts`, or nothing is sent.
 */
export function registryTokenAuth(
  upstream: UpstreamConfig,
  auth: RegistryTokenAuth,
  http: UpstreamHttp,
  logger: Logger,
): UpstreamAuth {
  const { username, passwordFile } = auth;
  return tokenDance(
    upstream,
    {
      token: 'an upstream registry token',
      tokenService: 'upstream token server',
      secret: "the proxy's credentials",
      realm: auth.realm,
      realmHosts: auth.realmHosts,
      account: username,
      credentials: async () => ({ username, password: readSecret(passwordFile) }),
    },
    http,
    logger,
  );
}
