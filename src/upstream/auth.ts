import type { UpstreamConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { acrAuth } from './kinds/acr.js';
import { ecrAuth } from './kinds/ecr.js';
import { garAuth } from './kinds/gar.js';
import { readSecret, registryTokenAuth } from './kinds/registry-token.js';
import type { RenewalObserver } from './renewal.js';
import type { UpstreamAuth, UpstreamHttp } from './types.js';

const fixed = (header: () => string | undefined): UpstreamAuth => ({
  authorization: async () => header(),
  invalidate: () => {},
  close: async () => {},
});

/**
 * The proxy's credentials for one upstream, by kind (a file per kind in kinds/; the token-dance
 * ones on token-dance.ts). `http`: the upstream's outbound pool, owned by its Upstream; `observe`:
 * told of each background credential call (ECR, ACR), for the metrics.
 */
export function createUpstreamAuth(
  upstream: UpstreamConfig,
  logger: Logger,
  http: UpstreamHttp,
  observe?: RenewalObserver,
): UpstreamAuth {
  const auth = upstream.auth;
  switch (auth.type) {
    case 'none':
      return fixed(() => undefined);
    case 'basic':
      return fixed(
        () => `Basic ${Buffer.from(`${auth.username}:${readSecret(auth.passwordFile)}`).toString('base64')}`,
      );
    case 'bearer':
      return fixed(() => `Bearer ${readSecret(auth.tokenFile)}`);
    case 'registry-token':
      return registryTokenAuth(upstream, auth, http, logger);
    case 'ecr':
      return ecrAuth(upstream.url, auth.region, logger, observe);
    case 'gar':
      return garAuth(upstream, logger, undefined, http);
    case 'acr':
      return acrAuth(upstream, logger, undefined, observe, http);
  }
}
