import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';

/**
 * The one way the proxy reads an answer for itself (token services, credential exchanges, discovery,
 * JWKS, TokenReview, readiness): a bounded time for the whole call and a bounded number of body bytes,
 * counted while the body streams in. An upstream that answers a token request with gigabytes must cost
 * one failed call, not the process. Bodies the proxy relays (`/v2/` traffic) never come here.
 */

/** A token answer is a few KiB; 64 KiB leaves room for a fat JWT and still cannot hurt the heap. */
export const OUTBOUND_MAX_BYTES = 64 * 1024;

/** Why an outbound call failed; `code` keeps the socket error's (ECONNREFUSED…) so callers can tell "unreachable". */
type OutboundFailure = 'timeout' | 'too-large' | 'network' | 'not-json' | 'status';

export class OutboundError extends Error {
  readonly code: string | undefined;
  readonly status: number | undefined;
  constructor(
    message: string,
    readonly outbound: OutboundFailure,
    opts: { code?: string; status?: number } = {},
  ) {
    super(message);
    this.name = 'OutboundError';
    this.code = opts.code;
    this.status = opts.status;
  }
}

/**
 * A connection pool for outbound calls: the extra CA (`ca`, or read here once from `caFile`: a pool
 * lives as long as what owns it), every phase bounded by `timeoutMs`.
 */
export function outboundAgent(opts: { caFile?: string; ca?: string; timeoutMs: number }): Agent {
  const ca = opts.ca ?? (opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined);
  return new Agent({
    connect: { timeout: opts.timeoutMs, ...(ca ? { ca } : {}) },
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
}

interface OutboundRequest {
  dispatcher: Dispatcher;
  /** The whole call: connect, headers and body. */
  timeoutMs: number;
  /** Body bytes read at most; default OUTBOUND_MAX_BYTES. */
  maxBytes?: number;
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

export interface OutboundAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** `host[:port]` for messages: never the path or query (a realm's query names scopes; some URLs carry secrets). */
function hostOf(url: string | URL): string {
  try {
    return new URL(url).host;
  } catch {
    return 'an invalid URL';
  }
}

function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['content-length'];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** A failure of the call as an OutboundError (the cause's own text: undici's never holds request headers). */
function failure(err: unknown, host: string, timeoutMs: number): OutboundError {
  if (err instanceof OutboundError) return err;
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (e?.name === 'TimeoutError' || (code !== undefined && /^UND_ERR_(CONNECT|HEADERS|BODY)_TIMEOUT$/.test(code)))
    return new OutboundError(`${host} did not answer within ${timeoutMs} ms`, 'timeout', { code: 'ETIMEDOUT' });
  return new OutboundError(`${host}: ${typeof e?.message === 'string' ? e.message : String(err)}`, 'network', { code });
}

/** The body, refused as soon as it passes `maxBytes` (declared or streamed): the socket is destroyed, nothing more is read. */
async function boundedText(res: Dispatcher.ResponseData, maxBytes: number, host: string): Promise<string> {
  const tooLarge = () => {
    res.body.destroy();
    return new OutboundError(
      `${host} answered HTTP ${res.statusCode} with more than ${maxBytes} bytes: refused`,
      'too-large',
      { status: res.statusCode },
    );
  };
  if ((declaredLength(res.headers) ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One bounded call; any status is an answer (the caller decides what a 401 means). */
export async function outbound(url: string | URL, req: OutboundRequest): Promise<OutboundAnswer> {
  const host = hostOf(url);
  const maxBytes = req.maxBytes ?? OUTBOUND_MAX_BYTES;
  try {
    const res = await request(url, {
      method: req.method ?? 'GET',
      dispatcher: req.dispatcher,
      headers: req.headers,
      body: req.body,
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    return { status: res.statusCode, headers: res.headers, text: await boundedText(res, maxBytes, host) };
  } catch (err) {
    throw failure(err, host, req.timeoutMs);
  }
}

/** The answer's body as JSON (undefined when empty); a body that is not JSON is an error naming the host and status. */
export async function outboundJson(
  url: string | URL,
  req: OutboundRequest,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: unknown }> {
  const answer = await outbound(url, req);
  try {
    return {
      status: answer.status,
      headers: answer.headers,
      body: answer.text.length ? JSON.parse(answer.text) : undefined,
    };
  } catch {
    throw new OutboundError(`${hostOf(url)} answered HTTP ${answer.status} with a body that is not JSON`, 'not-json', {
      status: answer.status,
    });
  }
}
