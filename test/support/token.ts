/**
 * Getting a registry token the way a client does: `GET /token?service=…&scope=…` with the identity
 * token as the Basic password. Tests that assert on the answer use `requestToken`; set-ups that
 * only need a token use `fetchRegistryToken`, which fails loudly when none is issued.
 */
export interface TokenBody {
  token?: string;
  access_token?: string;
  expires_in?: number;
  errors?: { code: string; message: string }[];
  error?: string;
  error_description?: string;
}

export interface TokenAnswer {
  status: number;
  statusText: string;
  headers: Headers;
  body: TokenBody;
}

export interface TokenRequestOptions {
  /** Default `registry.test`, the service of the test proxies. */
  service?: string;
  /** The Basic user name; the proxy ignores it. Default `x`. */
  user?: string;
}

export function basicAuth(password: string, user = 'x'): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function tokenURL(baseURL: string, scopes: string[], service = 'registry.test'): string {
  const q = new URLSearchParams({ service });
  for (const s of scopes) q.append('scope', s);
  return `${baseURL}/token?${q}`;
}

export async function requestToken(
  baseURL: string,
  identity: string,
  scopes: string[],
  opts: TokenRequestOptions = {},
): Promise<TokenAnswer> {
  const r = await fetch(tokenURL(baseURL, scopes, opts.service), {
    headers: { authorization: basicAuth(identity, opts.user) },
  });
  return { status: r.status, statusText: r.statusText, headers: r.headers, body: (await r.json()) as TokenBody };
}

export async function fetchRegistryToken(
  baseURL: string,
  identity: string,
  scopes: string[],
  opts: TokenRequestOptions = {},
): Promise<string> {
  const r = await requestToken(baseURL, identity, scopes, opts);
  if (r.status !== 200 || !r.body.token)
    throw new Error(`token request failed: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token;
}
