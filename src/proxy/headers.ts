import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/**
 * Header hygiene, before a request leaves and before a response returns: the client's credentials
 * and hop-by-hop headers are removed, the proxy's own credentials added, the upstream's challenges
 * and addresses kept from clients. Pure functions, or in-place edits of the one header object
 * the forwarder sends (exchange.ts).
 */

/** Request headers never forwarded upstream. */
const STRIP_REQUEST = new Set([
  'authorization',
  'cookie',
  'proxy-authorization',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'forwarded',
  // Headers that reverse proxies and frameworks believe for the client's address, the request's URL
  // or its method: the upstream (or something in front of it) must only ever see the proxy's.
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-host',
  'x-url-scheme',
  'x-scheme',
  'front-end-https',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);
/** Whole families: `X-Forwarded-*` (for, host, proto, port, prefix, server, uri…) and `X-Original-*` (url, method, host…). */
const STRIP_REQUEST_PREFIXES = ['x-forwarded-', 'x-original-'];

function isStrippedRequestHeader(name: string): boolean {
  const h = name.toLowerCase();
  return STRIP_REQUEST.has(h) || STRIP_REQUEST_PREFIXES.some((p) => h.startsWith(p));
}

/** Response headers that challenge for or answer credentials: the upstream's are for the proxy, never for clients. */
const AUTH_RESPONSE_HEADERS = [
  'www-authenticate',
  'proxy-authenticate',
  'authentication-info',
  'proxy-authentication-info',
];

/** True when the client asked for its connection to close (`Connection: close`, or HTTP/1.0 without keep-alive). Pure. */
export function clientWantsClose(
  req: Pick<IncomingMessage, 'headers' | 'httpVersionMajor' | 'httpVersionMinor'>,
): boolean {
  const connection = req.headers.connection ?? '';
  return (
    /(?:^|,)\s*close\s*(?:,|$)/i.test(connection) ||
    (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && !/keep-alive/i.test(connection))
  );
}

interface UpstreamRequestHeaders {
  /** The client's address as the proxy resolved it (X-Forwarded-For), if any. */
  clientIP?: string;
  /** Whether clients reach the proxy over TLS (X-Forwarded-Proto). */
  tls: boolean;
  /** The proxy's own Authorization for the upstream, if any. */
  authorization?: string;
  /** The body will be filtered: ask for it plain. */
  plainBody: boolean;
}

/** Rewrites the client's request headers, in place, into what the upstream may see. */
export function scrubRequestHeaders(headers: IncomingHttpHeaders, opts: UpstreamRequestHeaders): void {
  for (const h of Object.keys(headers)) if (isStrippedRequestHeader(h)) delete headers[h];
  if (opts.clientIP) headers['x-forwarded-for'] = opts.clientIP;
  headers['x-forwarded-proto'] = opts.tls ? 'https' : 'http';
  if (opts.authorization) headers.authorization = opts.authorization;
  if (opts.plainBody) delete headers['accept-encoding'];
}

/** The head of a request whose body is `length` bytes held in memory (read by a guard), counted as uploaded. */
export function frameAs(
  headers: IncomingMessage['headers'],
  length: number,
  exchange: { counted: { upload: number }; onBytes?: (direction: 'upload', bytes: number) => void },
): void {
  headers['content-length'] = String(length);
  delete headers['transfer-encoding'];
  exchange.counted.upload += length;
  if (length > 0) exchange.onBytes?.('upload', length);
}

/**
 * True when the forwarded head frames a request body explicitly. Pure. Without Content-Length or
 * Transfer-Encoding, Node's client writes a GET/HEAD/DELETE body raw after the head (and
 * exchange.ts, as http-proxy did, rewrites a DELETE/OPTIONS without Content-Length to `Content-Length: 0`, dropping
 * Transfer-Encoding): the upstream would parse those bytes as the next request on a pooled connection.
 */
export function forwardsFraming(method: string | undefined, headers: IncomingMessage['headers']): boolean {
  if (headers['content-length'] !== undefined) return true;
  return headers['transfer-encoding'] !== undefined && method !== 'DELETE' && method !== 'OPTIONS';
}

function rewriteLocation(
  location: string,
  upstreamURL: string,
  publicURL: string,
  clientPath: (path: string) => string = (p) => p,
): string {
  let target: URL;
  const upstream = new URL(upstreamURL);
  try {
    target = new URL(location, upstream);
  } catch {
    return location;
  }
  // Redirects to other hosts (S3-style storage, as ECR and Distribution's redirect mode do) pass untouched.
  const isRelative = !/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('//');
  // Compare host:port only: registries build absolute URLs with the X-Forwarded-Proto we send.
  if (!isRelative && target.host !== upstream.host) return location;
  // An upstream served under a path prefix (`upstream.url: http://host/prefix`, Distribution's
  // `http.prefix`) names its URLs with the prefix; clients know the proxy's `/v2/` only.
  const prefix = upstream.pathname.replace(/\/+$/, '');
  const path =
    prefix && target.pathname.startsWith(`${prefix}/`) ? target.pathname.slice(prefix.length) : target.pathname;
  return `${publicURL}${clientPath(path)}${target.search}`;
}

/** Every `<target>` of a `Link` header rewritten as a Location would be (pagination of tags, referrers). */
function rewriteLinkTargets(link: string, opts: ResponseRewrite): string {
  return link.replace(
    /<([^>]*)>/g,
    (_m, target: string) => `<${rewriteLocation(target, opts.upstreamURL, opts.publicURL, opts.clientPath)}>`,
  );
}

interface ResponseRewrite {
  upstreamURL: string;
  publicURL: string;
  /** Replaces the default `Link` rewrite; undefined drops the header. */
  rewriteLink?: (link: string) => string | undefined;
  /** The client's path for an upstream path (a name prefix added back); absent: unchanged. */
  clientPath?: (path: string) => string;
}

/**
 * Points the upstream's Location and Link at the proxy and drops its challenges, in place. The
 * upstream's challenges are addressed to the proxy (its realm, its credentials), whatever the
 * status: none reaches a client.
 */
export function rewriteResponseHeaders(headers: IncomingHttpHeaders, opts: ResponseRewrite): void {
  const loc = headers.location;
  if (typeof loc === 'string')
    headers.location = rewriteLocation(loc, opts.upstreamURL, opts.publicURL, opts.clientPath);
  const link = headers.link;
  if (typeof link === 'string') {
    const rewritten = opts.rewriteLink ? opts.rewriteLink(link) : rewriteLinkTargets(link, opts);
    if (rewritten === undefined) delete headers.link;
    else headers.link = rewritten;
  }
  for (const h of AUTH_RESPONSE_HEADERS) delete headers[h];
}

/**
 * Drops the upstream's cookies and hop-by-hop headers, in place: its connection handling is not the
 * client's. `close`: the client asked to close, or we are draining (so it reconnects elsewhere).
 */
export function clientConnectionHeaders(headers: IncomingHttpHeaders, close: boolean): void {
  delete headers['set-cookie'];
  delete headers['keep-alive'];
  headers.connection = close ? 'close' : 'keep-alive';
}
