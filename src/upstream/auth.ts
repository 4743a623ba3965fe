import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../config/types.js';
import { outbound, outboundAgent } from '../http/outbound.js';
import type { Logger } from '../log.js';
import type { Scope } from '../oci/scope.js';
import { parseBearerChallenge } from '../oci/challenge.js';
import { TokenCache, type CacheFill } from '../http/token-cache.js';
import { parseTokenResponse, untrustedRealm } from './token-realm.js';
import { askTokenService, scopedTokens } from './token-dance.js';
import { ecrAuth } from './kinds/ecr.js';
import { garAuth } from './kinds/gar.js';
import { acrAuth } from './kinds/acr.js';
import type { RenewalObserver } from './renewal.js';

/** Byte budget of the upstream-token cache: one entry per distinct scope set, a few thousand fit. */
const UPSTREAM_TOKEN_CACHE_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Credentials of the proxy itself for the upstream — never the client's. Secrets are re-read from
 * their files (rotation) and never logged.
 */
export interface UpstreamAuth {
  /** The Authorization header to send upstream for a request needing `scopes`, if any. */
  authorization(scopes: Scope[]): Promise<string | undefined>;
  /** Forget a cached upstream token (the upstream refused it). */
  invalidate(scopes: Scope[]): void;
  close(): Promise<void>;
}

function readSecret(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

type RegistryTokenAuth = Extract<UpstreamConfig['auth'], { type: 'registry-token' }>;

/** `observe`: told of each background credential call (ECR, ACR), for the metrics. */
export function createUpstreamAuth(upstream: UpstreamConfig, logger: Logger, observe?: RenewalObserver): UpstreamAuth {
  const auth = upstream.auth;
  switch (auth.type) {
    case 'none':
      return { authorization: async () => undefined, invalidate: () => {}, close: async () => {} };
    case 'basic':
      return {
        authorization: async () => `Basic ${Buffer.from(`${auth.username}:${readSecret(auth.passwordFile)}`).toString('base64')}`,
        invalidate: () => {},
        close: async () => {},
      };
    case 'bearer':
      return { authorization: async () => `Bearer ${readSecret(auth.tokenFile)}`, invalidate: () => {}, close: async () => {} };
    case 'registry-token':
      return registryTokenAuth(upstream, auth, logger);
    case 'ecr':
      return ecrAuth(upstream.url, auth.region, logger, observe);
    case 'gar':
      return garAuth(upstream, logger);
    case 'acr':
      return acrAuth(upstream, logger, undefined, observe);
  }
}

/**
 * The token realm to send the proxy's credentials to: `upstream.auth.realm` wins over the advertised
 * one (Harbor advertises http:// behind TLS, or its in-cluster service name); an advertised realm on
 * another origin than the upstream's must be on a host listed in `realmHosts`, or nothing is sent.
 */
function trustedRealm(upstream: UpstreamConfig, auth: RegistryTokenAuth, advertised: string, logger: Logger): string {
  if (auth.realm) return auth.realm;
  let url: URL;
  try {
    url = new URL(advertised);
  } catch {
    throw new Error(`upstream ${upstream.url} advertised a token realm that is not a URL`);
  }
  const refused = untrustedRealm(upstream.url, url, auth.realmHosts);
  if (!refused) return advertised;
  logger.error({ upstream: upstream.url, realmHost: refused.realmHost }, `${refused.message}: not sending the proxy's credentials there`);
  throw refused;
}

/**
 * Answers the upstream's own Bearer challenge (Harbor, Docker Hub, Distribution in token mode):
 * learn realm/service from `GET /v2/`, fetch a token per scope set with our username/password,
 * cache it until shortly before it expires (bounded, least-recently-used; one fetch per scope set
 * at a time).
 */
function registryTokenAuth(upstream: UpstreamConfig, auth: RegistryTokenAuth, logger: Logger): UpstreamAuth {
  const { username, passwordFile } = auth;
  const dispatcher = outboundAgent({ caFile: upstream.caFile, timeoutMs: upstream.timeout });
  let challenge: { realm: string; service?: string } | undefined;
  const cache = new TokenCache<string>(UPSTREAM_TOKEN_CACHE_MAX_BYTES);

  async function learnChallenge(): Promise<{ realm: string; service?: string }> {
    if (challenge) return challenge;
    const res = await outbound(`${upstream.url}/v2/`, { dispatcher, timeoutMs: upstream.timeout });
    const h = res.headers['www-authenticate'];
    const parsed = parseBearerChallenge(h);
    if (res.status !== 401 || !parsed?.realm) throw new Error(`upstream ${upstream.url}/v2/ did not answer with a Bearer challenge (HTTP ${res.status})`);
    challenge = { realm: trustedRealm(upstream, auth, parsed.realm, logger), service: parsed.service };
    return challenge;
  }

  async function fetchToken(scopes: Scope[]): Promise<CacheFill<string>> {
    const ch = await learnChallenge();
    const credentials = { username, password: readSecret(passwordFile) };
    const answer = await askTokenService(ch.realm, { service: ch.service, scopes, account: username }, credentials, {
      dispatcher,
      timeoutMs: upstream.timeout,
    });
    if (answer.status !== 200) throw new Error(`upstream token server ${answer.where} answered HTTP ${answer.status}`);
    // A token narrower than asked (the upstream grants less) is used as is: the upstream answers 401/403 itself.
    const { header, until } = parseTokenResponse(answer.text, Date.now());
    return { value: header, until, token: header };
  }

  return scopedTokens({
    cache,
    fetch: (scopes) => fetchToken(scopes),
    logger,
    failure: 'could not obtain an upstream registry token',
    forget: () => (challenge = undefined),
    close: () => dispatcher.close(),
  });
}
