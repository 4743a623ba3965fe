import { decodeJwt } from 'jose';
import type { AccessToken, TokenCredential } from '@azure/identity';
import type { Logger } from '../../log.js';
import { renewalPacer, type RenewalObserver } from '../renewal.js';
import type { TokenEndpoint } from '../token-dance.js';

/** A background renewal that failed is tried again after this long (while the refresh token lasts). */
const RETRY_MS = 30_000;
/** A token's lifetime left unused, so that it is never sent just as it expires. */
const EXPIRY_MARGIN_MS = 10_000;

/** Microsoft Entra access tokens for ACR's audience. */
export interface EntraTokens {
  get(): Promise<AccessToken>;
  /** Forget the credential (ACR refused its token): the next `get` starts afresh. */
  forget(): void;
}

/**
 * The Entra scope of ACR's own audience in the registry's cloud, told by its host (`*.azurecr.cn`:
 * Azure China, `*.azurecr.us`: Azure Government, else public): accepted whether or not the registry
 * still takes ARM-audience tokens. Pure.
 */
export function acrScopeOf(url: string): string {
  const host = new URL(url).hostname.toLowerCase();
  const audience = host.endsWith('.azurecr.cn') ? 'azure.cn' : host.endsWith('.azurecr.us') ? 'azure.us' : 'azure.net';
  return `https://containerregistry.${audience}/.default`;
}

/**
 * DefaultAzureCredential, loaded on first use (a proxy without an ACR upstream never loads
 * @azure/identity): AZURE_CLIENT_SECRET / certificate, workload identity (AZURE_FEDERATED_TOKEN_FILE),
 * managed identity, then developer tools; AZURE_TOKEN_CREDENTIALS narrows the chain. It caches the
 * token and renews it before it expires. The authority comes from the operator (AZURE_AUTHORITY_HOST
 * or the public cloud's): instance discovery would ask login.microsoftonline.com to vouch for it,
 * which sovereign, air-gapped or Azure Stack deployments cannot reach.
 */
export function defaultAzureCredential(scope: string, tenantId: string | undefined): EntraTokens {
  let credential: Promise<TokenCredential> | undefined;
  const load = () =>
    (credential ??= import('@azure/identity').then(
      ({ DefaultAzureCredential }) =>
        new DefaultAzureCredential({ ...(tenantId ? { tenantId } : {}), disableInstanceDiscovery: true }),
    ));
  return {
    async get() {
      const token = await (await load()).getToken(scope);
      if (!token) throw new Error('DefaultAzureCredential gave no Microsoft Entra token');
      return token;
    },
    forget() {
      credential = undefined;
    },
  };
}

/** ACR's error body (`{"errors":[{"code","message"}]}`) as ` (CODE: message)` for the log, bounded. Pure. */
export function acrReason(text: string): string {
  try {
    const e = (JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] }).errors?.[0];
    if (e && (typeof e.code === 'string' || typeof e.message === 'string'))
      return ` (${[e.code, e.message].filter(Boolean).join(': ').slice(0, 300)})`;
  } catch {
    // not JSON: the status says enough
  }
  return '';
}

/**
 * Until when a JWT may be used: its own lifetime (exp − iat, so another clock does not matter)
 * from `now`, less a margin (a tenth of a short lifetime). Undefined if it names none. Pure.
 */
export function jwtUntil(token: string, now: number): number | undefined {
  try {
    const { iat, exp } = decodeJwt(token);
    if (typeof iat !== 'number' || typeof exp !== 'number' || exp <= iat) return undefined;
    const lifetime = (exp - iat) * 1000;
    return now + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 10);
  } catch {
    return undefined;
  }
}

/** The tenant an Entra access token was issued by (`tid`), if it says. Pure. */
function tenantOf(token: string): string | undefined {
  try {
    const { tid } = decodeJwt(token);
    return typeof tid === 'string' ? tid : undefined;
  } catch {
    return undefined;
  }
}

interface RefreshToken {
  token: string;
  expiresAt: number;
  /** Until its renewal when that comes later than `expiresAt` (an answer already expired): ACR judges it then. */
  usableUntil: number;
}

/** Where the registry's token service is (the `/v2/` challenge's realm) and the service it names. */
type Endpoint = TokenEndpoint;

/** POSTs a form, answering status and body. */
type PostForm = (url: URL, form: URLSearchParams) => Promise<[number, string]>;

/**
 * One exchange: `POST /oauth2/exchange` (the realm's sibling, on the upstream's own origin — the only
 * place the Entra token is sent) with `grant_type=access_token`, the service, the tenant and the
 * Entra token. The refresh token lasts until its own `exp`, never beyond the Entra token's.
 */
async function exchange(
  endpoint: Endpoint,
  tenant: string | undefined,
  entra: EntraTokens,
  post: PostForm,
): Promise<Omit<RefreshToken, 'usableUntil'>> {
  const aad = await entra.get();
  // The refresh token's lifetime starts at the exchange, not before the Entra token (whose first
  // fetch loads @azure/identity and can take seconds).
  const started = Date.now();
  const url = new URL('exchange', endpoint.realm);
  const form = new URLSearchParams({ grant_type: 'access_token', service: endpoint.service ?? endpoint.realm.host });
  const t = tenant ?? tenantOf(aad.token) ?? process.env.AZURE_TENANT_ID;
  if (t) form.set('tenant', t);
  form.set('access_token', aad.token);
  const [status, text] = await post(url, form);
  if (status !== 200) {
    // A new credential next time: the Entra token may be stale (revoked, or the role just granted).
    entra.forget();
    throw new Error(`ACR token exchange ${url.origin}${url.pathname} answered HTTP ${status}${acrReason(text)}`);
  }
  let token: unknown;
  try {
    token = (JSON.parse(text) as { refresh_token?: unknown }).refresh_token;
  } catch {
    // reported below
  }
  if (typeof token !== 'string' || token === '')
    throw new Error(`ACR token exchange ${url.origin}${url.pathname} returned no refresh_token`);
  return { token, expiresAt: Math.min(jwtUntil(token, started) ?? aad.expiresOnTimestamp, aad.expiresOnTimestamp) };
}

/**
 * The ACR refresh token, got by `exchange` and kept until it expires; renewed in the background at
 * 80 % of its lifetime (floored, with back-off: renewal.ts), one exchange at a time however many
 * requests wait; a failed renewal is retried every 30 s while the old one lasts.
 */
export function refreshTokens(
  tenant: string | undefined,
  entra: EntraTokens,
  post: PostForm,
  logger: Logger,
  observe?: RenewalObserver,
) {
  let current: RefreshToken | undefined;
  let pending: Promise<RefreshToken> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const pacer = renewalPacer('the ACR refresh token', logger, observe);

  function schedule(endpoint: Endpoint, ms: number): void {
    clearTimeout(timer);
    if (closed) return;
    timer = setTimeout(() => {
      load(endpoint).catch((err: unknown) => {
        const retry = current !== undefined && current.expiresAt - Date.now() > RETRY_MS;
        logger.warn({ err: (err as Error).message, retry }, 'could not renew the ACR refresh token');
        if (retry) schedule(endpoint, RETRY_MS);
      });
    }, ms);
    timer.unref();
  }

  function load(endpoint: Endpoint): Promise<RefreshToken> {
    pending ??= pacer
      .attempt(() => exchange(endpoint, tenant, entra, post))
      .then((r) => {
        // The lifetime left when the answer arrives (not since the call began: a slow exchange or
        // SDK load would push the renewal past expiry).
        const delay = pacer.answered(r.expiresAt - Date.now());
        schedule(endpoint, delay);
        return (current = { ...r, usableUntil: Math.max(r.expiresAt, Date.now() + delay) });
      })
      .finally(() => (pending = undefined));
    return pending;
  }

  return {
    async get(endpoint: Endpoint): Promise<string> {
      if (current && current.usableUntil > Date.now()) return current.token;
      return (await load(endpoint)).token;
    },
    drop(): void {
      current = undefined;
    },
    close(): void {
      closed = true;
      clearTimeout(timer);
    },
  };
}
