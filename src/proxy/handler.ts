import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { announcesBody } from '../http/body.js';
import { sendJson } from '../http/response.js';
import type { Logger } from '../log.js';
import { createCursorCodec, openCatalogQuery, type CursorKeySource } from '../oci/catalog-cursor.js';
import { OciError, sendOciError, API_VERSION, API_VERSION_HEADER } from '../oci/errors.js';
import { refuseBody } from '../oci/request-body.js';
import { classify, isRouteError, type Route } from '../oci/route.js';
import type { PolicyEngine } from '../policy/types.js';
import type { Metrics } from '../http/metrics.js';
import type { RegistryTokenVerifier } from '../token/types.js';
import { authorize, isAuthorized } from './authorize.js';
import { guardPlan, runGuards, type Forwardable, type Guard, type GuardContext } from './guards.js';
import { productionGuards } from './guards/production.js';
import { forwardRoute, type ForwardContext } from './forward-route.js';
import { canonicalRoute, createTargets, targetOf, withNamespace, type Target } from './upstreams.js';
import { upstreamFailureError } from '../upstream/failure.js';
import type { Upstream } from '../upstream/upstream.js';
import type { Trust } from '../trust/verify.js';
import type { Auditor } from '../audit/auditor.js';
import { auditRequest, type RequestAudit } from './audit.js';
import type { RequestTrace, Tracing } from '../tracing/types.js';

/** `/v2/...`: classify → authorize (a route or an error) → guards → forward; every refusal is written once, here. */

interface ProxyDeps {
  config: Config;
  /** The configured upstreams (upstream/upstream.ts), built once and shared with the readiness probe; closed by their owner. */
  upstreams: readonly Upstream[];
  logger: Logger;
  tokens: RegistryTokenVerifier;
  /** For `anonymous: true` and for narrowing the catalog to what an identity may pull. */
  policy?: PolicyEngine;
  metrics?: Metrics;
  /** True while shutting down (proxied responses then close their connections). */
  draining?: () => boolean;
  /** Signing keys, from which catalog cursors are sealed (absent: a per-process key). */
  keys?: CursorKeySource;
  /** The guard stage (absent: the production list, guards/production.ts); tests inject their own. */
  guards?: readonly Guard[];
  /** Signature verdicts for `trust:` policies (the signatures guard; absent: none configured). */
  trust?: Trust;
  /** Where manifest and blob requests' audit events go (absent: none). */
  auditor?: Auditor;
  /** OpenTelemetry spans (absent: `tracing:` not configured, and no span is made). */
  tracing?: Tracing;
}

export interface ProxyHandler {
  /** The route comes from req.url itself (classify), so no parsed URL is needed. */
  (req: IncomingMessage, res: ServerResponse, url?: URL): Promise<void>;
  close(): Promise<void>;
}

/**
 * The request's route, or why it is refused before any credential is looked at; containerd's
 * mirror hint (`?ns=`) picks the upstream, and the name takes its canonical form (`hub/nginx` →
 * `hub/library/nginx`), here, before anything is authorized. Pure.
 */
function routeOf(
  req: Pick<IncomingMessage, 'method' | 'url' | 'headers' | 'headersDistinct'>,
  targets: readonly Target[],
): Route | OciError {
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
  const classified = classify(req.method ?? 'GET', q < 0 ? rawUrl : rawUrl.slice(0, q), rawQuery);
  if (isRouteError(classified)) return classified;
  const namespaced = withNamespace(targets, classified, rawQuery ? new URLSearchParams(rawQuery).get('ns') : null);
  if (isRouteError(namespaced)) return namespaced;
  const route = canonicalRoute(targets, namespaced);
  if (isRouteError(route)) return route;
  const refused = refuseBody(route, {
    contentTypes:
      req.headersDistinct?.['content-type'] ?? (req.headers['content-type'] ? [req.headers['content-type']] : []),
    hasBody: announcesBody(req.headers),
  });
  return refused ?? route;
}

/** A catalog route with its cursor opened, or the 400 for a `last` this proxy did not seal. */
function withOpenCursor(route: Route, open: Parameters<typeof openCatalogQuery>[1]): Route | OciError {
  if (route.kind !== 'catalog') return route;
  const query = openCatalogQuery(route.query, open);
  return query instanceof OciError ? query : { ...route, query };
}

const NO_UPSTREAM = new OciError(
  404,
  'NAME_UNKNOWN',
  'no upstream serves this repository name: it matches no configured prefix',
);
const NO_CATALOG = new OciError(
  400,
  'UNSUPPORTED',
  'the catalog is not available when several upstreams are configured',
);

/** What a span may say of the route: its kind, repository and reference (names, never credentials). */
function traceRoute(trace: RequestTrace, route: Route): void {
  trace.set('rap.route', route.kind);
  if (route.name !== undefined) trace.set('rap.repository', route.name);
  if (route.reference !== undefined) trace.set('rap.reference', route.reference);
}

/** The upstream serving the route, or why none can. */
function targetFor(targets: readonly Target[], route: Route): Target | OciError {
  const target = targetOf(targets, route);
  if (!target) return targets.length ? NO_UPSTREAM : upstreamFailureError('unconfigured');
  return route.kind === 'catalog' && targets.length > 1 ? NO_CATALOG : target;
}

/** The guards' answer: what to forward, or the refusal, logged under the guard's name with its reason. */
async function guarded(
  guards: readonly Guard[],
  logger: Logger,
  ctx: GuardContext & { upstream: Target },
  res: ServerResponse,
  audit?: RequestAudit,
  trace?: RequestTrace,
): Promise<Forwardable | OciError> {
  const span = trace?.child('guards');
  const outcome = await runGuards(guards, ctx);
  span?.end('route' in outcome ? 'pass' : `refused by ${outcome.guard}`);
  if ('route' in outcome) {
    // What a guard holds (a tag's lock) is released when the exchange ends, however it ends; a
    // client that left while a guard waited has no exchange to wait for.
    if (outcome.release) res.once('close', outcome.release);
    if (outcome.release && ctx.req.socket.destroyed) outcome.release();
    return outcome;
  }
  audit?.refusedBy(outcome.guard, outcome.reason);
  const fields = {
    guard: outcome.guard,
    route: ctx.route.kind,
    code: outcome.refused.code,
    ...(outcome.reason ? { reason: outcome.reason } : {}),
  };
  if (outcome.widened) logger.error(fields, 'guard rewrote the route beyond what was authorized: refused');
  else logger.info(fields, 'guard refused the request');
  return outcome.refused;
}

export function createProxyHandler(deps: ProxyDeps): ProxyHandler {
  const { config, logger, tokens, metrics, policy } = deps;
  const targets = createTargets(deps.upstreams, config, logger, deps.draining);
  const cursors = createCursorCodec(deps.keys);
  const guards = deps.guards ?? productionGuards(config, policy, deps.trust && { trust: deps.trust, logger });
  const guardsFor = guardPlan(guards);
  const forwarding: ForwardContext = { config, targets, policy, metrics, seal: cursors.seal };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const trace = deps.tracing?.request(req, res, '/v2/');
    const route = routeOf(req, targets);
    if (route instanceof OciError) return sendOciError(res, route);
    if (trace) traceRoute(trace, route);
    const audit = auditRequest(req, res, route, deps.auditor);
    const authorizing = trace?.child('authorize');
    const authorized = await authorize(req, route, { config, logger, tokens, policy });
    authorizing?.end(isAuthorized(authorized) ? 'granted' : authorized.code);
    if (!isAuthorized(authorized)) return sendOciError(res, authorized);
    audit?.granted(authorized);
    // A reference that names nothing: the 404 Distribution gives, once authorized, never forwarded.
    if (authorized.route.notFound) return sendOciError(res, authorized.route.notFound);
    // Anonymous access: `/v2/` answers for itself, with no upstream call.
    if (authorized.anonymous && authorized.route.kind === 'ping') {
      return sendJson(res, 200, {}, { 'content-type': 'application/json', [API_VERSION_HEADER]: API_VERSION });
    }
    const effective = withOpenCursor(authorized.route, cursors.open);
    if (effective instanceof OciError) return sendOciError(res, effective);
    const target = targetFor(targets, effective);
    if (target instanceof OciError) return sendOciError(res, target);
    audit?.upstream(target.name);
    const active = guardsFor(effective.method, effective.kind);
    const ready =
      active.length === 0
        ? { route: effective }
        : await guarded(
            active,
            logger,
            { req, route: effective, grant: authorized, upstream: target },
            res,
            audit,
            trace,
          );
    if (ready instanceof OciError) return sendOciError(res, ready);
    await forwardRoute(forwarding, req, res, ready, target, authorized.identity, { audit, trace });
  };
  return Object.assign(handler, {
    async close() {
      for (const t of targets) t.forwarder.close();
    },
  });
}
