import type { UpstreamConfig } from '../config/types.js';
import { outbound, outboundAgent } from '../http/outbound.js';
import { TokenCache, type CacheFill } from '../http/token-cache.js';
import type { Logger } from '../log.js';
import { parseBearerChallenge } from '../oci/challenge.js';
import { formatScope, scopeSetKey, type Scope } from '../oci/scope.js';
import { parseTokenResponse, untrustedRealm } from './token-realm.js';
import type { UpstreamAuth, UpstreamHttp } from './types.js';

/**
 * The registry-token dance, once for every kind that speaks it (registry-token, GAR, ACR):
 * challenge (`GET /v2/`) → a realm the proxy may send its secret to → ask the token service with
 * Basic credentials → cache the token per scope set. A kind supplies only what differs: how to get
 * the credentials for the token service (DanceKind).
 */

/** Byte budget of a kind's registry-token cache: one entry per distinct scope set, a few thousand fit. */
const CACHE_MAX_BYTES = 8 * 1024 * 1024;

/** Where the token service is, as the upstream's challenge (or the config) told. */
export interface TokenEndpoint {
  realm: URL;
  service?: string;
}

/** What a kind of the dance supplies. */
interface DanceKind {
  /** Logged when no token can be had: `could not obtain ${token}`. */
  token: string;
  /** Names the token service in errors ("upstream token server", "GAR token service"). */
  tokenService: string;
  /** Names what would go to an untrusted realm, for the log ("the proxy's credentials"). */
  secret: string;
  /** A configured realm, used instead of the advertised one (registry-token's `auth.realm`). */
  realm?: string;
  /** Hosts besides the upstream's own that may receive the secret as a realm (registry-token's `auth.realmHosts`). */
  realmHosts?: readonly string[];
  /** The service when the challenge names none (absent: none is sent). */
  service?(realm: URL, scopes: Scope[]): Promise<string | undefined>;
  /** The Basic credentials for the token service, fetched (or re-read) for each call. */
  credentials(endpoint: TokenEndpoint): Promise<{ username: string; password: string }>;
  /** `account=` in the token request. */
  account?: string;
  /** The token service answered 401: forget the credential, the call is tried once more (absent: no retry). */
  refused?(): void;
  /** A refusal's body for the error, bounded (ACR's error code). */
  reason?(text: string): string;
  /** A 200 answer as a cache fill (absent: its `expires_in`). */
  fill?(text: string, now: number): CacheFill<string>;
  /** The upstream refused a token (`invalidate`): drop the credential behind it too. */
  onInvalidate?(): void;
  close?(): void;
}

/** One `GET <realm>?service=…&scope=…` with Basic credentials, as Docker's token spec has it; any status is an answer. */
async function askTokenService(
  endpoint: TokenEndpoint,
  q: { scopes: Scope[]; account?: string },
  credentials: { username: string; password: string },
  http: UpstreamHttp,
): Promise<{ status: number; text: string; where: string }> {
  const url = new URL(endpoint.realm);
  if (endpoint.service) url.searchParams.set('service', endpoint.service);
  for (const s of q.scopes) url.searchParams.append('scope', formatScope(s));
  if (q.account) url.searchParams.set('account', q.account);
  const basic = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  // Bounded: a token service answering with gigabytes fails this call, not the process.
  const res = await outbound(url, {
    dispatcher: http.dispatcher,
    timeoutMs: http.timeoutMs,
    headers: { authorization: `Basic ${basic}` },
  });
  // The realm, for messages (origin and path: the query names scopes, never credentials).
  return { status: res.status, text: res.text, where: `${url.origin}${url.pathname}` };
}

/** The advertised realm if the secret may go there (the upstream's origin, or a listed host); else an error, logged with the host only. */
function trustedRealm(upstream: UpstreamConfig, kind: DanceKind, advertised: string, logger: Logger): URL {
  let realm: URL;
  try {
    realm = new URL(advertised);
  } catch {
    throw new Error(`upstream ${upstream.url} advertised a token realm that is not a URL`);
  }
  const refused = untrustedRealm(upstream.url, realm, kind.realmHosts ?? []);
  if (!refused) return realm;
  logger.error(
    { upstream: upstream.url, realmHost: refused.realmHost },
    `${refused.message}: not sending ${kind.secret} there`,
  );
  throw refused;
}

/** Realm and service from the upstream's `/v2/` challenge (a configured realm wins); the kind fills in a missing service. */
async function learnEndpoint(
  upstream: UpstreamConfig,
  kind: DanceKind,
  scopes: Scope[],
  http: UpstreamHttp,
  logger: Logger,
): Promise<TokenEndpoint> {
  const res = await outbound(`${upstream.url}/v2/`, { dispatcher: http.dispatcher, timeoutMs: http.timeoutMs });
  const ch = res.status === 401 ? parseBearerChallenge(res.headers['www-authenticate']) : undefined;
  if (!ch?.realm)
    throw new Error(`upstream ${upstream.url}/v2/ did not answer with a Bearer challenge (HTTP ${res.status})`);
  const realm = kind.realm ? new URL(kind.realm) : trustedRealm(upstream, kind, ch.realm, logger);
  return { realm, service: ch.service || (await kind.service?.(realm, scopes)) };
}

/**
 * The dance for one upstream: one cached token per scope set, fetched once for concurrent callers,
 * until shortly before it expires. A failed fetch is logged and forgets the endpoint learnt, so the
 * next request starts over; `invalidate` drops that scope set's token (and what the kind says).
 */
export function tokenDance(
  upstream: UpstreamConfig,
  kind: DanceKind,
  http: UpstreamHttp,
  logger: Logger,
  close?: () => Promise<void>,
): UpstreamAuth {
  const cache = new TokenCache<string>(CACHE_MAX_BYTES);
  let endpoint: Promise<TokenEndpoint> | undefined;

  async function fetchToken(scopes: Scope[], retried = false): Promise<CacheFill<string>> {
    const ep = await (endpoint ??= learnEndpoint(upstream, kind, scopes, http, logger));
    const answer = await askTokenService(ep, { scopes, account: kind.account }, await kind.credentials(ep), http);
    if (answer.status === 401 && kind.refused && !retried) {
      kind.refused();
      return fetchToken(scopes, true);
    }
    if (answer.status !== 200)
      throw new Error(
        `${kind.tokenService} ${answer.where} answered HTTP ${answer.status}${kind.reason?.(answer.text) ?? ''}`,
      );
    if (kind.fill) return kind.fill(answer.text, Date.now());
    // A token narrower than asked (the upstream grants less) is used as is: the upstream answers 401/403 itself.
    const { header, until } = parseTokenResponse(answer.text, Date.now());
    return { value: header, until, token: header };
  }

  return {
    async authorization(scopes, opts) {
      try {
        return await cache.getOrLoad(scopeSetKey(scopes), () => fetchToken(scopes));
      } catch (err) {
        if (!opts?.quiet) logger.error({ err: (err as Error).message }, `could not obtain ${kind.token}`);
        endpoint = undefined;
        throw err;
      }
    },
    invalidate(scopes) {
      cache.delete(scopeSetKey(scopes));
      kind.onInvalidate?.();
    },
    async close() {
      kind.close?.();
      await close?.();
    },
  };
}

/**
 * `http` when given (the Upstream's pool, closed by its owner), else a pool of the kind's own for
 * `upstream`, closed with the auth built on it (a kind used alone, as its tests do).
 */
export function withOwnHttp(
  upstream: UpstreamConfig,
  http: UpstreamHttp | undefined,
  build: (http: UpstreamHttp, close?: () => Promise<void>) => UpstreamAuth,
): UpstreamAuth {
  if (http) return build(http);
  const dispatcher = outboundAgent({ caFile: upstream.caFile, timeoutMs: upstream.timeout });
  return build({ dispatcher, timeoutMs: upstream.timeout }, () => dispatcher.close());
}
