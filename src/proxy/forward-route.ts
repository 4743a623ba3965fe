import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import type { Config } from '../config/types.js';
import type { Identity } from '../identity/types.js';
import { clientIPOf } from '../http/client-ip.js';
import type { Metrics } from '../http/metrics.js';
import { catalogLink } from '../oci/catalog-cursor.js';
import { createCatalogFilter } from '../oci/catalog-filter.js';
import { sendOciError } from '../oci/errors.js';
import type { Route } from '../oci/route.js';
import type { Forwardable } from './guards.js';
import { digestVerifier } from './digest-check.js';
import type { RequestAudit } from './audit.js';
import { allows } from '../policy/grant.js';
import type { PolicyEngine, RequestContext } from '../policy/types.js';
import { upstreamAuthFailureError } from '../upstream/failure.js';
import { rateLimitRemaining } from '../upstream/token-realm.js';
import { catalogName, clientPath, tagsNameRewrite, toUpstream, type Target } from './upstreams.js';
import type { RequestTrace, TraceSpan } from '../tracing/types.js';

/**
 * The last step of `/v2/` (handler.ts decides up to here): the route, authorized and guarded, sent
 * to its upstream with the proxy's own credential, with the body filters and observers it needs.
 */

/** What forwarding needs beyond the request: built once by the handler. */
export interface ForwardContext {
  config: Config;
  targets: readonly Target[];
  policy?: PolicyEngine;
  metrics?: Metrics;
  /** Seals a catalog cursor (oci/catalog-cursor.ts). */
  seal: (name: string) => string;
}

/**
 * The catalog by the names clients use (an upstream's prefix added), narrowed to the repositories
 * this identity may pull (policy decides per client name, as it would for a pull). A catalog token
 * without an identity (older tokens) sees an empty list.
 */
function catalogFilter(
  policy: PolicyEngine | undefined,
  identity: Identity | undefined,
  ctx: RequestContext,
  clientName: (upstreamName: string) => string | undefined,
): () => Transform {
  return () =>
    createCatalogFilter((upstreamName) => {
      const name = clientName(upstreamName);
      if (!identity || !policy || name === undefined) return undefined;
      return allows(policy, identity, { type: 'repository', name, actions: ['pull'] }, ctx) ? name : undefined;
    });
}

/** A verified manifest's digest check; the catalog narrowed by policy; a tags list's `name` given back as the client's; else none. */
function bodyFilter(route: Route, ready: Forwardable, catalog: () => () => Transform): (() => Transform) | undefined {
  const verified = ready.expectDigest;
  // A manifest forwarded by its verified digest: a GET's body is released once it hashes to it.
  if (verified && route.method === 'GET') return () => digestVerifier(verified);
  if (route.kind === 'catalog') return catalog();
  return route.kind === 'tags' && route.name !== ready.route.name
    ? tagsNameRewrite(route.name!, ready.route.name!)
    : undefined;
}

/** What the upstream's answer tells: the audit event's digest, latency and rate-limit metrics; a 401 drops the credential it refused. */
function upstreamStatusObserver(
  target: Target,
  route: Route,
  metrics: Metrics | undefined,
  audit?: RequestAudit,
  span?: TraceSpan,
) {
  return (status: number, seconds: number, headers: IncomingMessage['headers']): void => {
    audit?.upstreamHeaders(headers);
    span?.set('http.response.status_code', status);
    // `upstream` only with several upstreams: a single one keeps its series as they were.
    const labels = target.name ? { upstream: target.name } : {};
    metrics?.upstreamLatency.observe({ route: route.kind, status: String(status), ...labels }, seconds);
    const remaining = rateLimitRemaining(headers['ratelimit-remaining']);
    if (remaining !== undefined) metrics?.upstreamRateLimitRemaining.set(labels, remaining);
    if (status === 401) target.auth.invalidate(route.scopes);
  };
}

/** Body bytes streamed, once per exchange: the metric (the audit event reads the live counts, `counted`). */
function bytesObserver(metrics: Metrics | undefined) {
  if (!metrics) return undefined;
  return (direction: 'upload' | 'download', bytes: number): void => {
    metrics.bytesStreamed.inc({ direction }, bytes);
  };
}

/** Streams the authorized request to the upstream with the proxy's own credentials. */
export async function forwardRoute(
  ctx: ForwardContext,
  req: IncomingMessage,
  res: ServerResponse,
  ready: Forwardable,
  target: Target,
  identity: Identity | undefined,
  observers: { audit?: RequestAudit; trace?: RequestTrace } = {},
): Promise<void> {
  const { audit, trace } = observers;
  const { config, targets, policy, metrics } = ctx;
  const clientRoute = ready.route;
  const { forwarder, auth: upstreamAuth } = target;
  const route = toUpstream(targets, target, clientRoute);
  // From the upstream credential (a token dance, maybe) to the last byte of the response.
  const span = trace?.upstream(req.headers, res, target.name);
  let authorization: string | undefined;
  try {
    authorization = await upstreamAuth.authorization(route.scopes);
  } catch (err) {
    // The registry-token dance failed: refused, or its token server could not be reached.
    span?.end('upstream credentials failed', true);
    return sendOciError(res, upstreamAuthFailureError(err));
  }
  const catalog = route.kind === 'catalog';
  forwarder.forward(req, res, {
    path: `${route.path}${route.query}`,
    authorization,
    route: route.kind,
    onUpstreamStatus: upstreamStatusObserver(target, route, metrics, audit, span),
    filterBody: bodyFilter(route, ready, () =>
      catalogFilter(policy, identity, { service: config.service, clientIP: clientIPOf(req) }, (name) =>
        catalogName(targets, target, name),
      ),
    ),
    expectDigest: ready.expectDigest,
    responseHeaders: ready.headers,
    // The upstream's next-page Link names a repository of the unfiltered list: seal it.
    rewriteLink: catalog ? (link) => catalogLink(link, config.publicURL, ctx.seal) : undefined,
    onBytes: bytesObserver(metrics),
    counted: audit?.bytes,
    clientPath: clientPath(target.prefix),
    // A body a guard read (a capped manifest it hashed) goes up as read.
    body: ready.body,
  });
}
