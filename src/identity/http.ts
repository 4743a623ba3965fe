import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';

/** Outbound HTTP for discovery, JWKS and TokenReview: custom CA, a bearer token re-read per call, bounded time and size. */
interface HttpClientOptions {
  caFile?: string;
  bearerTokenFile?: string;
  /**
   * Origins (`https://host:port`) the bearer token may be sent to. Any other URL — a `jwks_uri` a
   * discovery document names, say — is fetched without it: the token is a credential for the
   * issuer / API server, not for whoever that server points us at. Empty or absent: sent nowhere.
   */
  bearerTokenOrigins?: string[];
  timeoutMs?: number;
  maxBytes?: number;
}

const ACCEPT = 'application/json, application/jwk-set+json';

class HttpError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface JsonResponse {
  status: number;
  body: unknown;
}

export interface HttpClient {
  getJson(url: string): Promise<JsonResponse>;
  postJson(url: string, payload: unknown): Promise<JsonResponse>;
  close(): Promise<void>;
}

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const timeoutMs = options.timeoutMs ?? 5000;
  const maxBytes = options.maxBytes ?? 1 << 20;
  const ca = options.caFile ? readFileSync(options.caFile, 'utf8') : undefined;
  const dispatcher: Dispatcher = new Agent({
    connect: { ...(ca ? { ca } : {}), timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 30_000,
  });

  const bearerOrigins = new Set((options.bearerTokenOrigins ?? []).map(originOf).filter((o): o is string => o !== undefined));

  function headers(url: string): Record<string, string> {
    // The Kubernetes API server's /openid/v1/jwks produces only application/jwk-set+json and answers
    // 406 to `application/json` alone; discovery and TokenReview produce application/json.
    const h: Record<string, string> = { accept: ACCEPT };
    if (options.bearerTokenFile && bearerOrigins.has(originOf(url) ?? '')) {
      // Re-read on every call: projected service-account tokens rotate under us.
      const token = readFileSync(options.bearerTokenFile, 'utf8').trim();
      if (token) h.authorization = `Bearer ${token}`;
    }
    return h;
  }

  async function send(url: string, method: 'GET' | 'POST', payload?: unknown): Promise<JsonResponse> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        dispatcher,
        headers: payload === undefined ? headers(url) : { ...headers(url), 'content-type': 'application/json' },
        body: payload === undefined ? undefined : JSON.stringify(payload),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new HttpError(`${method} ${url} failed: ${(err as Error).message}`);
    }
    return { status: res.statusCode, body: await readJson(res, maxBytes, `${method} ${url}`) };
  }

  return {
    getJson: (url) => send(url, 'GET'),
    postJson: (url, payload) => send(url, 'POST', payload),
    close: () => dispatcher.close(),
  };
}

/** The body as JSON (undefined when empty), refused beyond maxBytes so an answer cannot exhaust memory. */
async function readJson(res: Dispatcher.ResponseData, maxBytes: number, what: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      res.body.destroy();
      throw new HttpError(`${what}: response larger than ${maxBytes} bytes`, res.statusCode);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return text.length ? JSON.parse(text) : undefined;
  } catch {
    throw new HttpError(`${what}: HTTP ${res.statusCode}, not JSON`, res.statusCode);
  }
}

/** `scheme://host[:port]` of a URL (default ports dropped, host lower-cased), or undefined if it is not one. */
export function originOf(url: string): string | undefined {
  try {
    const o = new URL(url).origin;
    return o === 'null' ? undefined : o;
  } catch {
    return undefined;
  }
}
