import { readFileSync } from 'node:fs';
import { outboundAgent, outboundJson } from '../http/outbound.js';

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
  // A JWKS with many keys can pass the 64 KiB of a token answer; 1 MiB still cannot hurt.
  const maxBytes = options.maxBytes ?? 1 << 20;
  const dispatcher = outboundAgent({ caFile: options.caFile, timeoutMs });

  const bearerOrigins = new Set(
    (options.bearerTokenOrigins ?? []).map(originOf).filter((o): o is string => o !== undefined),
  );

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
    const { status, body } = await outboundJson(url, {
      method,
      dispatcher,
      timeoutMs,
      maxBytes,
      headers: payload === undefined ? headers(url) : { ...headers(url), 'content-type': 'application/json' },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    return { status, body };
  }

  return {
    getJson: (url) => send(url, 'GET'),
    postJson: (url, payload) => send(url, 'POST', payload),
    close: () => dispatcher.close(),
  };
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
