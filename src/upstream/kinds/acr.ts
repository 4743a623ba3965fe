import type { UpstreamConfig } from '../../config/types.js';
import { outbound } from '../../http/outbound.js';
import type { CacheFill } from '../../http/token-cache.js';
import type { Logger } from '../../log.js';
import { parseTokenResponse } from '../token-realm.js';
import { tokenDance, withOwnHttp } from '../token-dance.js';
import type { RenewalObserver } from '../renewal.js';
import type { UpstreamAuth, UpstreamHttp } from '../types.js';
import {
  acrReason,
  acrScopeOf,
  defaultAzureCredential,
  jwtUntil,
  refreshTokens,
  type EntraTokens,
} from './acr-refresh.js';

/** The Basic username telling ACR's token service that the password is an ACR refresh token. */
const REFRESH_TOKEN_USERNAME = '00000000-0000-0000-0000-000000000000';

/** The token service's answer as a cache fill. ACR sends `{"access_token"}` without `expires_in`: its JWT's own lifetime (~75 min) beats the spec's 60 s. Pure. */
function toFill(text: string, now: number): CacheFill<string> {
  const { header, until } = parseTokenResponse(text, now);
  return { value: header, until: jwtUntil(header.slice('Bearer '.length), now) ?? until, token: header };
}

/**
 * Azure Container Registry: a Microsoft Entra token (DefaultAzureCredential, for ACR's audience)
 * exchanged for an ACR refresh token (acr-refresh.ts), which is then the password of the token
 * dance with the null-GUID username. Realm and service come from the `/v2/` challenge; the realm
 * must be on the upstream's own origin, where the exchange is too. The token service refusing the
 * refresh token drops it and the call is tried once more with a new one; an upstream 401
 * (`invalidate`) drops both.
 */
export function acrAuth(
  upstream: UpstreamConfig,
  logger: Logger,
  entra?: EntraTokens,
  observe?: RenewalObserver,
  http?: UpstreamHttp,
): UpstreamAuth {
  const tenant = upstream.auth.type === 'acr' ? upstream.auth.tenant : undefined;
  return withOwnHttp(upstream, http, (h, close) => {
    const post = async (url: URL, form: URLSearchParams): Promise<[number, string]> => {
      const headers = { 'content-type': 'application/x-www-form-urlencoded' };
      const res = await outbound(url, {
        method: 'POST',
        dispatcher: h.dispatcher,
        timeoutMs: h.timeoutMs,
        headers,
        body: form.toString(),
      });
      return [res.status, res.text];
    };
    const refresh = refreshTokens(
      tenant,
      entra ?? defaultAzureCredential(acrScopeOf(upstream.url), tenant),
      post,
      logger,
      observe,
    );
    return tokenDance(
      upstream,
      {
        token: 'an ACR registry token',
        tokenService: 'ACR token service',
        secret: 'the ACR credentials',
        service: async (realm) => realm.host,
        credentials: async (ep) => ({ username: REFRESH_TOKEN_USERNAME, password: await refresh.get(ep) }),
        refused: () => refresh.drop(),
        reason: acrReason,
        fill: toFill,
        onInvalidate: () => refresh.drop(),
        close: () => refresh.close(),
      },
      h,
      logger,
      close,
    );
  });
}
