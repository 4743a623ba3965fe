import type { Dispatcher } from 'undici';
import { outbound } from '../http/outbound.js';
import type { Logger } from '../log.js';
import type { CacheFill, TokenCache } from '../http/token-cache.js';
import { formatScope, scopeSetKey, type Scope } from '../oci/scope.js';

/**
 * The registry-token dance's I/O, shared by the registry-token, GAR and ACR auth: one call to a token
 * service, and the per-scope-set token cache.
 */

/** What the token service answered; the caller decides what a status means (a 401 may be retried). */
interface TokenServiceAnswer {
  status: number;
  text: string;
  /** The realm, for messages (origin and path: the query names scopes, never credentials). */
  where: string;
}

/** One `GET <realm>?service=…&scope=…` with Basic credentials, as Docker's token spec has it. */
export async function askTokenService(
  realm: string | URL,
  q: { service?: string; scopes: Scope[]; account?: string },
  credentials: { username: string; password: string },
  http: { dispatcher: Dispatcher; timeoutMs: number },
): Promise<TokenServiceAnswer> {
  const url = new URL(realm);
  if (q.service) url.searchParams.set('service', q.service);
  for (const s of q.scopes) url.searchParams.append('scope', formatScope(s));
  if (q.account) url.searchParams.set('account', q.account);
  const basic = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  // Bounded: a token service answering with gigabytes fails this call, not the process.
  const res = await outbound(url, { dispatcher: http.dispatcher, timeoutMs: http.timeoutMs, headers: { authorization: `Basic ${basic}` } });
  return { status: res.status, text: res.text, where: `${url.origin}${url.pathname}` };
}

/**
 * The upstream auth of a token dance: one cached token per scope set, fetched once for concurrent
 * callers. A failed fetch is logged as `failure` and `forget()`s what was learnt about the token
 * service (its challenge), so the next request starts over; `invalidate` drops that scope set's token.
 */
export function scopedTokens(o: {
  cache: TokenCache<string>;
  fetch(scopes: Scope[]): Promise<CacheFill<string>>;
  logger: Logger;
  failure: string;
  forget(): void;
  onInvalidate?(): void;
  close(): Promise<void>;
}): { authorization(scopes: Scope[]): Promise<string>; invalidate(scopes: Scope[]): void; close(): Promise<void> } {
  return {
    async authorization(scopes) {
      try {
        return await o.cache.getOrLoad(scopeSetKey(scopes), () => o.fetch(scopes));
      } catch (err) {
        o.logger.error({ err: (err as Error).message }, o.failure);
        o.forget();
        throw err;
      }
    },
    invalidate(scopes) {
      o.cache.delete(scopeSetKey(scopes));
      o.onInvalidate?.();
    },
    close: o.close,
  };
}
