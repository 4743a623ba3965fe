import {
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { UpstreamConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { OciError, sendOciError } from '../oci/errors.js';
import { upstreamFailureError } from '../upstream/failure.js';
import { followable, storageAgents } from './redirect-target.js';

/**
 * `upstream.followRedirects`: blob GET/HEAD redirects to object storage (ECR → S3, Docker Hub →
 * Cloudflare, GHCR → pkg-containers, Distribution's `storage.redirect`) followed by the proxy
 * itself, for clusters where only the proxy has egress. The signed URL is the credential: nothing
 * of the upstream's (Authorization, cookies) goes there. Where it may lead is redirect-target.ts; the
 * follow streams, at most MAX_HOPS redirects, the method kept (a HEAD stays a HEAD).
 */

const MAX_HOPS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** The client's request headers that may reach the storage host: content negotiation and ranges, never credentials. */
const PASS_REQUEST = [
  'accept',
  'accept-encoding',
  'range',
  'if-range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'user-agent',
];
/** The registry's own headers of the redirect answer, kept when the storage's answer lacks them. */
const CARRY_RESPONSE = ['docker-content-digest', 'docker-distribution-api-version'];
const DROP_RESPONSE = [
  'set-cookie',
  'keep-alive',
  'www-authenticate',
  'proxy-authenticate',
  'authentication-info',
  'proxy-authentication-info',
];

/** One exchange's state, shared with the forwarder's idle watchdog (it destroys `proxyReq` when idle). */
export interface FollowExchange {
  progress: number;
  proxyReq?: { destroy(err?: Error): void };
  requestId?: string;
  route: string;
  onBytes?: (direction: 'download', bytes: number) => void;
  counted: { download: number };
}

const notFollowed = (why: string) =>
  new OciError(502, 'UNAVAILABLE', `upstream storage redirect not followed: ${why}`, {
    statusMessage: 'Bad Gateway (upstream storage redirect not followed)',
  });

/** One follow: what each hop sends, and where the answer goes. */
interface Follow {
  method: 'GET' | 'HEAD';
  /** The client's headers that may go to the storage (PASS_REQUEST). */
  headers: IncomingHttpHeaders;
  /** The registry's headers of its redirect answer (CARRY_RESPONSE). */
  carried: IncomingHttpHeaders;
  res: ServerResponse;
  ex: FollowExchange;
  close: boolean;
}

function pick(headers: IncomingHttpHeaders, names: string[]): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const h of names) if (headers[h] !== undefined) out[h] = headers[h];
  return out;
}

/** A follow given up: logged, and answered 502 (504 on a timeout) unless the storage's answer has begun. */
function refuseFollow(
  logger: Logger,
  res: ServerResponse,
  ex: FollowExchange,
  why: string,
  err?: NodeJS.ErrnoException,
): void {
  logger.warn({ requestId: ex.requestId, route: ex.route, err: why }, 'storage redirect not followed');
  if (res.headersSent || res.destroyed) return void res.destroy();
  if (err?.code === 'ETIMEDOUT') return sendOciError(res, upstreamFailureError('timeout'));
  sendOciError(
    res,
    notFollowed(err?.code === 'EREDIRECTREFUSED' || !err ? why : `storage unreachable (${err.code ?? 'error'})`),
  );
}

export interface RedirectFollower {
  /** Takes over `res` when `upstreamRes` is a redirect to follow (true); false: not a redirect, or one for the client. */
  follow(
    upstreamRes: IncomingMessage,
    req: IncomingMessage,
    res: ServerResponse,
    ex: FollowExchange,
    close: boolean,
  ): boolean;
  close(): void;
}

/** `ca`: the upstream's extra CA (http/agents.ts, read once), trusted for storage hosts too. */
export function createRedirectFollower(upstream: UpstreamConfig, logger: Logger, ca?: string): RedirectFollower {
  const { http, https } = storageAgents(upstream, ca);
  const fail = (res: ServerResponse, ex: FollowExchange, why: string, err?: NodeJS.ErrnoException) =>
    refuseFollow(logger, res, ex, why, err);

  function hop(target: URL, hops: number, f: Follow): void {
    const { res, ex } = f;
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const outgoing: ClientRequest = send(target, {
      method: f.method,
      headers: f.headers,
      agent: target.protocol === 'https:' ? https : http,
    });
    ex.proxyReq = outgoing;
    outgoing.on('error', (err: NodeJS.ErrnoException) => fail(res, ex, err.message, err));
    outgoing.on('response', (storageRes) => {
      const status = storageRes.statusCode ?? 0;
      const location = storageRes.headers.location;
      if (REDIRECT_STATUSES.has(status) && typeof location === 'string') {
        storageRes.resume();
        if (hops >= MAX_HOPS) return fail(res, ex, `more than ${MAX_HOPS} redirects`);
        const next = followable(location, upstream, target.href);
        if ('refuse' in next) return fail(res, ex, next.refuse);
        if ('follow' in next) return hop(next.follow, hops + 1, f);
      }
      deliver(storageRes, f);
    });
    outgoing.end();
  }

  return {
    follow(upstreamRes, req, res, ex, close) {
      const location = upstreamRes.headers.location;
      if (!REDIRECT_STATUSES.has(upstreamRes.statusCode ?? 0) || typeof location !== 'string') return false;
      const decision = followable(location, upstream);
      if ('pass' in decision) return false;
      upstreamRes.resume();
      if ('refuse' in decision) return (fail(res, ex, decision.refuse), true);
      // the client leaving aborts whichever request is under way (the watchdog's, `proxyReq`, too)
      res.once('close', () => ex.proxyReq?.destroy());
      ex.proxyReq = undefined;
      const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
      hop(decision.follow, 1, {
        method,
        headers: pick(req.headers, PASS_REQUEST),
        carried: pick(upstreamRes.headers, CARRY_RESPONSE),
        res,
        ex,
        close,
      });
      return true;
    },
    close() {
      http.destroy();
      https.destroy();
    },
  };
}

/** The storage's answer, streamed to the client: its cookies, challenges and connection handling dropped. */
function deliver(storageRes: IncomingMessage, { carried, res, ex, close }: Follow): void {
  const headers: IncomingHttpHeaders = { ...carried, ...storageRes.headers };
  for (const h of DROP_RESPONSE) delete headers[h];
  headers.connection = close ? 'close' : 'keep-alive';
  const { counted } = ex;
  storageRes.on('data', (chunk: Buffer) => {
    counted.download += chunk.length;
    ex.progress++;
  });
  storageRes.once('close', () => {
    if (counted.download > 0) ex.onBytes?.('download', counted.download);
    // cut short at the storage: cut short for the client too
    if (!storageRes.complete) res.destroy();
  });
  res.writeHead(storageRes.statusCode ?? 502, headers);
  // as the forwarder does: pipe, with a short body cutting the client (above), the client leaving the request (follow)
  storageRes.pipe(res);
}
