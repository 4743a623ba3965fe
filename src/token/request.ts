import type { IncomingMessage } from 'node:http';
import { OciError, oauthError } from '../oci/errors.js';
import { parseScopes, ScopeError, type Scope } from '../oci/scope.js';

/** Parse: an HTTP request → a TokenRequest and its scopes, or the error the client gets. No writes. */

const MAX_FORM_BYTES = 64 * 1024;
/** Scopes one token request may ask for. */
const MAX_SCOPES = 64;

/** A token request, normalized from GET (Basic + query) or POST (OAuth2 form). */
export interface TokenRequest {
  method: 'GET' | 'POST';
  grantType: 'password' | 'refresh_token';
  username?: string;
  password?: string;
  refreshToken?: string;
  service?: string;
  scopes: string[];
  clientId?: string;
  offline: boolean;
}

/** A well-formed request for this service, with its scopes parsed. */
interface ParsedTokenRequest {
  request: TokenRequest;
  scopes: Scope[];
}

/** A request refused before any identity was looked at; what was parsed so far goes into the audit line. */
interface ParseRefusal {
  error: OciError;
  request?: TokenRequest;
  scopes: Scope[];
}

export function isParseRefusal(x: ParsedTokenRequest | ParseRefusal): x is ParseRefusal {
  return 'error' in x;
}

const invalidRequest = (message: string, headers?: Record<string, string>) =>
  oauthError(400, 'UNSUPPORTED', 'invalid_request', message, { headers });

/** Parses `Authorization: Basic …`; the password is the identity token. */
function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/**
 * Reads the form within `timeoutMs`: a body that never arrives would otherwise hold its connection
 * (and a file descriptor) forever, and a few hundred such requests took the proxy down. Refusals
 * close the connection: the rest of the body is never read, so nothing after it can be parsed.
 * Rejects only when the request stream itself fails.
 */
async function readForm(req: IncomingMessage, timeoutMs: number): Promise<URLSearchParams | OciError> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded')
    return invalidRequest('POST /token takes an application/x-www-form-urlencoded body');
  const tooLarge = () =>
    oauthError(413, 'SIZE_INVALID', 'invalid_request', `form body larger than ${MAX_FORM_BYTES} bytes`, {
      headers: { connection: 'close' },
    });
  if (Number(req.headers['content-length'] ?? 0) > MAX_FORM_BYTES) return tooLarge();
  const body = await new Promise<Buffer | OciError>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | OciError | Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (result instanceof OciError || Buffer.isBuffer(result)) resolve(result);
      else reject(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) done(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => done(Buffer.concat(chunks));
    const onError = (err: Error) => done(err);
    const timer = setTimeout(
      () =>
        done(
          oauthError(408, 'UNSUPPORTED', 'invalid_request', `the request body did not arrive within ${timeoutMs} ms`, {
            headers: { connection: 'close' },
          }),
        ),
      timeoutMs,
    );
    req.on('data', onData).once('end', onEnd).once('error', onError);
  });
  return Buffer.isBuffer(body) ? new URLSearchParams(body.toString('utf8')) : body;
}

/** GET (Basic + query) or POST (OAuth2 form) → one TokenRequest, or why the request is malformed. */
async function parseTokenRequest(
  req: IncomingMessage,
  url: URL,
  bodyTimeoutMs = 10_000,
): Promise<TokenRequest | OciError> {
  if (req.method === 'GET') {
    const q = url.searchParams;
    const basic = parseBasic(req.headers.authorization);
    return {
      method: 'GET',
      grantType: 'password',
      username: basic?.username,
      password: basic?.password,
      service: q.get('service') ?? undefined,
      scopes: q.getAll('scope'),
      clientId: q.get('client_id') ?? undefined,
      offline: q.get('offline_token') === 'true',
    };
  }
  const form = await readForm(req, bodyTimeoutMs);
  if (!(form instanceof URLSearchParams)) return form;
  const grant = form.get('grant_type');
  if (grant !== 'password' && grant !== 'refresh_token') {
    return oauthError(
      400,
      'UNSUPPORTED',
      'unsupported_grant_type',
      `grant_type must be "password" or "refresh_token", not ${JSON.stringify(grant ?? '')}`,
    );
  }
  return {
    method: 'POST',
    grantType: grant,
    username: form.get('username') ?? undefined,
    password: form.get('password') ?? undefined,
    refreshToken: form.get('refresh_token') ?? undefined,
    service: form.get('service') ?? undefined,
    scopes: form.getAll('scope'),
    clientId: form.get('client_id') ?? undefined,
    offline: form.get('access_type') === 'offline',
  };
}

/**
 * The request's service and scopes, checked against the service this endpoint issues tokens for,
 * repository names in their canonical form (`canonical`, the one the proxy judges requests by). Pure.
 */
export function checkTokenRequest(
  request: TokenRequest,
  service: string,
  canonical?: (repository: string) => string,
): ParsedTokenRequest | ParseRefusal {
  if (request.service !== undefined && request.service !== service) {
    return {
      request,
      scopes: [],
      error: invalidRequest(
        `unknown service ${JSON.stringify(request.service.slice(0, 200))}: this token server issues tokens for "${service}"`,
      ),
    };
  }
  let scopes: Scope[];
  try {
    scopes = parseScopes(request.scopes, canonical);
  } catch (err) {
    if (!(err instanceof ScopeError)) throw err;
    return {
      request,
      scopes: [],
      error: oauthError(400, 'UNSUPPORTED', 'invalid_scope', `invalid scope: ${err.message}`),
    };
  }
  if (scopes.length > MAX_SCOPES)
    return {
      request,
      scopes,
      error: oauthError(400, 'UNSUPPORTED', 'invalid_scope', `too many scopes in one request (max ${MAX_SCOPES})`),
    };
  return { request, scopes };
}

/** Method, body and parameters of a `/token` request, checked: the whole parse stage. */
export async function readTokenRequest(
  req: IncomingMessage,
  url: URL,
  opts: { service: string; bodyTimeoutMs: number; canonical?: (repository: string) => string },
): Promise<ParsedTokenRequest | ParseRefusal> {
  if (req.method !== 'GET' && req.method !== 'POST') {
    return {
      scopes: [],
      error: oauthError(405, 'UNSUPPORTED', 'invalid_request', 'use GET (HTTP Basic) or POST (OAuth2 form)', {
        headers: { allow: 'GET, POST' },
      }),
    };
  }
  const request = await parseTokenRequest(req, url, opts.bodyTimeoutMs);
  if (request instanceof OciError) return { scopes: [], error: request };
  return checkTokenRequest(request, opts.service, opts.canonical);
}
