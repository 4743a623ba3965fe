import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/types.js';
import { outbound, outboundAgent } from '../../http/outbound.js';
import type { Logger } from '../../log.js';
import type { Scope } from '../../oci/scope.js';
import { parseBearerChallenge } from '../../oci/challenge.js';
import { TokenCache, type CacheFill } from '../../http/token-cache.js';
import { parseTokenResponse, untrustedRealm } from '../token-realm.js';
import { askTokenService, scopedTokens } from '../token-dance.js';
import type { RenewalObserver } from '../renewal.js';
import { acrReason, acrScopeOf, defaultAzureCredential, jwtUntil, refreshTokens, type EntraTokens, type Endpoint } from './acr-refresh.js';

/** The Basic username telling ACR's token service that the password is an ACR refresh token. */
const REFRESH_TOKEN_USERNAME = '00000000-0000-0000-0000-000000000000';
/** Byte budget of the registry-token cache: one entry per distinct scope set. */
const CACHE_MAX_BYTES = 8 * 1024 * 1024;

/** Realm and service from the `/v2/` challenge; a realm off the upstream's origin is refused (logged: the host only). */
async function learnEndpoint(upstream: UpstreamConfig, dispatcher: Dispatcher, logger: Logger): Promise<Endpoint> {
  const res = await outbound(`${upstream.url}/v2/`, { dispatcher, timeoutMs: upstream.timeout });
  const ch = res.status === 401 ? parseBearerChallenge(res.headers['www-authenticate']) : undefined;
  if (!ch?.realm) throw new Error(`upstream ${upstream.url}/v2/ did not answer with a Bearer challenge (HTTP ${res.status})`);
  let realm: URL;
  try {
    realm = new URL(ch.realm);
  } catch {
    throw new Error(`upstream ${upstream.url} advertised a token realm that is not a URL`);
  }
  const refused = untrustedRealm(upstream.url, realm, []);
  if (refused) {
    logger.error({ upstream: upstream.url, realmHost: refused.realmHost }, `${refused.message}: not sending the ACR credentials there`);
    throw refused;
  }
  return { realm, service: ch.service || realm.host };
}

/** The token service's answer as a cache fill. ACR sends `{"access_token"}` without `expires_in`: its JWT's own lifetime (~75 min) beats the spec's 60 s. Pure. */
function toFill(text: string, now: number): CacheFill<string> {
  const { header, until } = parseTokenResponse(text, now);
  return { value: header, until: jwtUntil(header.slice('Bearer '.length), now) ?? until, token: header };
}

/**
 * Azure Container Registry: a Microsoft Entra token (DefaultAzureCredential, for ACR's audience)
 * exchanged for an ACR refresh token (acr-refresh.ts), which is then
 * the password of the registry-token dance with the null-GUID username. Realm and service come from
 * the `/v2/` challenge; the realm must be on the upstream's own origin, where the exchange is too.
 * A registry token is cached per scope set; the token service refusing the refresh token drops it
 * and the call is tried once more with a new one; an upstream 401 (`invalidate`) drops both.
 */
export function acrAuth(upstream: UpstreamConfig, logger: Logger, entra?: EntraTokens, observe?: RenewalObserver) {
  const tenant = upstream.auth.type === 'acr' ? upstream.auth.tenant : undefined;
  const dispatcher = outboundAgent({ caFile: upstream.caFile, timeoutMs: upstream.timeout });
  const post = async (url: URL, form: URLSearchParams): Promise<[number, string]> => {
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const res = await outbound(url, { method: 'POST', dispatcher, timeoutMs: upstream.timeout, headers, body: form.toString() });
    return [res.status, res.text];
  };
  const refresh = refreshTokens(tenant, entra ?? defaultAzureCredential(acrScopeOf(upstream.url), tenant), post, logger, observe);
  const cache = new TokenCache<string>(CACHE_MAX_BYTES);
  let endpoint: Promise<Endpoint> | undefined;

  async function fetchToken(scopes: Scope[], retried = false): Promise<CacheFill<string>> {
    const ep = await (endpoint ??= learnEndpoint(upstream, dispatcher, logger));
    const credentials = { username: REFRESH_TOKEN_USERNAME, password: await refresh.get(ep) };
    const answer = await askTokenService(ep.realm, { service: ep.service, scopes }, credentials, { dispatcher, timeoutMs: upstream.timeout });
    if (answer.status === 401 && !retried) {
      refresh.drop();
      return fetchToken(scopes, true);
    }
    if (answer.status !== 200) throw new Error(`ACR token service ${answer.where} answered HTTP ${answer.status}${acrReason(answer.text)}`);
    return toFill(answer.text, Date.now());
  }

  return scopedTokens({
    cache,
    fetch: (scopes) => fetchToken(scopes),
    logger,
    failure: 'could not obtain an ACR registry token',
    forget: () => (endpoint = undefined),
    onInvalidate: () => refresh.drop(),
    close: async () => {
      refresh.close();
      await dispatcher.close();
    },
  });
}
