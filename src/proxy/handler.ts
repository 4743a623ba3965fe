import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { anonymousIdentity, type Identity } from '../identity/types.js';
import type { Logger } from '../log.js';
import { deniedError, sendChallenge } from '../oci/challenge.js';
import { OciError, sendOciError, API_VERSION, API_VERSION_HEADER } from '../oci/errors.js';
import { classify, isRouteError, refuseBody, withoutMount, type Route } from '../oci/route.js';
import { createCatalogFilter } from '../oci/catalog-filter.js';
import { catalogLink, createCursorCodec, openCatalogQuery, type CursorKeySource } from '../oci/catalog-cursor.js';
import { isValidRepositoryName } from '../oci/scope.js';
import type { Transform } from 'node:stream';
import type { Scope } from '../oci/scope.js';
import { denialDetail, denialMessage, refusalsFor, requesterOf, type Refusal } from '../policy/explain.js';
import type { PolicyEngine } from '../policy/types.js';
import type { Metrics } from '../server/metrics.js';
import { clientIPOf } from '../server/client-ip.js';
import { RegistryTokenError, type AccessEntry, type RegistryTokenVerifier } from '../token/types.js';
import { createForwarder, sendUpstreamFailure, upstreamAuthFailureKind, type Forwarder } from './forward.js';
import { createUpstreamAuth, type UpstreamAuth } from './upstream-auth.js';

export interface ProxyDeps {
  config: Config;
  logger: Logger;
  tokens: RegistryTokenVerifier;
  /** For `anonymous: true` and for narrowing the catalog to what an identity may pull. */
  policy?: PolicyEngine;
  metrics?: Metrics;
  /** True while shutting down (proxied responses then close their connections). */
  draining?: () => boolean;
  /** Signing keys, from which catalog cursors are sealed (absent: a per-process key). */
  keys?: CursorKeySource;
}

/** `scope` narrowed to the actions `access` does not grant, or undefined when it grants them all (`*` grants all). */
export function lacking(access: AccessEntry[], scope: Scope): Scope | undefined {
  const granted = new Set<string>();
  for (const a of access) {
    if (a.type === scope.type && a.name === scope.name) for (const act of a.actions) granted.add(act);
  }
  const missing = granted.has('*') ? [] : scope.actions.filter((a) => !granted.has(a));
  return missing.length > 0 ? { ...scope, actions: missing } : undefined;
}

/** True when `access` grants every action of `scope` (`*` grants all). */
export function covers(access: AccessEntry[], scope: Scope): boolean {
  return lacking(access, scope) === undefined;
}

type Auth = { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'invalid'; reason: string };

function bearerOf(req: IncomingMessage): Auth {
  const raw = req.headersDistinct?.authorization ?? (req.headers.authorization ? [req.headers.authorization] : []);
  if (raw.length === 0) return { kind: 'none' };
  if (raw.length > 1) return { kind: 'invalid', reason: 'several Authorization headers' };
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(raw[0]!);
  // Basic credentials on /v2/ are not ours to check: answer with the Bearer challenge.
  if (!m) return /^Basic\s/i.test(raw[0]!) ? { kind: 'none' } : { kind: 'invalid', reason: 'not a Bearer token' };
  return { kind: 'bearer', token: m[1]! };
}

export interface ProxyHandler {
  (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  close(): Promise<void>;
}

export function createProxyHandler(deps: ProxyDeps): ProxyHandler {
  const { config, logger, tokens, metrics } = deps;
  const realm = `${config.publicURL}/token`;
  const forwarder: Forwarder | undefined = config.upstream ? createForwarder(config, logger, deps.draining) : undefined;
  const upstreamAuth: UpstreamAuth | undefined = config.upstream ? createUpstreamAuth(config.upstream, logger) : undefined;
  const cursors = createCursorCodec(deps.keys);

  /** The authorized route, and who the token names when it carries an identity (catalog tokens). */
  async function authorize(req: IncomingMessage, res: ServerResponse, route: Route): Promise<{ route: Route; identity?: Identity } | undefined> {
    const auth = bearerOf(req);
    let access: AccessEntry[];
    let identity: Identity | undefined;
    // What the policy refused when the token was issued, and to whom (`sub`): explains a 403.
    let refused: Refusal[] = [];
    let subject: string | undefined;
    if (auth.kind === 'none') {
      if (!config.anonymous || !deps.policy) {
        sendChallenge(res, { realm, service: config.service, scopes: route.scopes });
        return undefined;
      }
      const who = anonymousIdentity();
      identity = who;
      const ctx = { service: config.service, clientIP: clientIPOf(req) };
      access = route.scopes.map((s) => ({ type: s.type, name: s.name, actions: deps.policy!.decide(who, s, ctx).granted }));
      if (route.kind === 'ping') {
        res.writeHead(200, { 'content-type': 'application/json', [API_VERSION_HEADER]: API_VERSION, 'content-length': '2' });
        res.end('{}');
        return undefined;
      }
      if (!route.scopes.every((s) => covers(access, s))) {
        sendChallenge(res, { realm, service: config.service, scopes: route.scopes });
        return undefined;
      }
    } else if (auth.kind === 'invalid') {
      logger.info({ reason: auth.reason, route: route.kind }, 'rejected malformed Authorization');
      sendChallenge(res, { realm, service: config.service, scopes: route.scopes, error: 'invalid_token' });
      return undefined;
    } else {
      try {
        ({ access, identity, refused, subject } = await tokens.verify(auth.token));
      } catch (err) {
        if (!(err instanceof RegistryTokenError)) throw err;
        logger.info({ reason: err.message, route: route.kind }, 'rejected registry token');
        sendChallenge(res, { realm, service: config.service, scopes: route.scopes, error: 'invalid_token' });
        return undefined;
      }
    }
    let effective = route;
    if (route.mountFrom !== undefined && route.mountFrom !== route.name && !covers(access, route.scopes[1]!)) {
      // `from` may not be pulled: never forward the mount. Start a plain upload instead, which is
      // what the registry itself does when a mount cannot be satisfied.
      effective = withoutMount(route);
    }
    const missing = effective.scopes.map((s) => lacking(access, s)).filter((s): s is Scope => s !== undefined);
    if (missing.length > 0) {
      // Refused by the policy at issuance: a new token would be the same, so say why (403). Never
      // asked for: challenge, and the client fetches a token for it.
      const explained = refusalsFor(missing, refused);
      if (explained) {
        const who = subject !== undefined ? requesterOf(subject) : undefined;
        sendOciError(res, deniedError(denialMessage(who, explained, config.explainDenials), denialDetail(who, explained, config.explainDenials)));
      } else {
        sendChallenge(res, { realm, service: config.service, scopes: effective.scopes, error: 'insufficient_scope' });
      }
      return undefined;
    }
    return { route: effective, identity };
  }

  /**
   * The catalog, narrowed to the repositories this identity may pull (policy decides per name, as it
   * would for a pull). A catalog token without an identity (older tokens) sees an empty list.
   */
  function catalogFilter(req: IncomingMessage, identity: Identity | undefined): () => Transform {
    const policy = deps.policy;
    const ctx = { service: config.service, clientIP: clientIPOf(req) };
    return () =>
      createCatalogFilter((name) => {
        if (!identity || !policy || !isValidRepositoryName(name)) return false;
        return policy.decide(identity, { type: 'repository', name, actions: ['pull'] }, ctx).granted.includes('pull');
      });
  }

  const handler = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const rawQuery = (req.url ?? '').includes('?') ? req.url!.slice(req.url!.indexOf('?') + 1) : '';
    const route = classify(req.method ?? 'GET', rawPath, rawQuery);
    void url;
    if (isRouteError(route)) {
      sendOciError(res, new OciError(route.status, route.code, route.message, undefined, route.allow ? { Allow: route.allow } : {}));
      return;
    }
    const te = req.headers['transfer-encoding'];
    const refused = refuseBody(route, {
      contentTypes: req.headersDistinct?.['content-type'] ?? (req.headers['content-type'] ? [req.headers['content-type']] : []),
      hasBody: (te !== undefined && te !== '') || Number(req.headers['content-length'] ?? 0) !== 0,
    });
    if (refused) {
      // The unread body would otherwise have to be drained before the connection could be reused.
      sendOciError(res, new OciError(refused.status, refused.code, refused.message, undefined, { Connection: 'close' }));
      return;
    }
    const authorized = await authorize(req, res, route);
    if (!authorized) return;
    let effective = authorized.route;
    if (effective.kind === 'catalog') {
      const query = openCatalogQuery(effective.query, cursors.open);
      if (query === undefined) {
        sendOciError(res, new OciError(400, 'UNSUPPORTED', 'invalid catalog cursor (`last`): use the Link of the previous page'));
        return;
      }
      effective = { ...effective, query };
    }
    if (!forwarder || !upstreamAuth) {
      sendUpstreamFailure(res, 'unconfigured');
      return;
    }
    let authorization: string | undefined;
    try {
      authorization = await upstreamAuth.authorization(effective.scopes);
    } catch (err) {
      // The registry-token dance failed: refused, or its token server could not be reached.
      const kind = upstreamAuthFailureKind(err);
      sendUpstreamFailure(res, kind, kind === 'unreachable' ? { code: (err as NodeJS.ErrnoException).code } : {});
      return;
    }
    forwarder.forward(req, res, {
      path: `${effective.path}${effective.query}`,
      authorization,
      route: effective.kind,
      onUpstreamStatus: (status, seconds) => {
        metrics?.upstreamLatency.observe({ route: effective.kind, status: String(status) }, seconds);
        if (status === 401) upstreamAuth.invalidate(effective.scopes);
      },
      filterBody: effective.kind === 'catalog' ? catalogFilter(req, authorized.identity) : undefined,
      // The upstream's next-page Link names a repository of the unfiltered list: seal it.
      rewriteLink: effective.kind === 'catalog' ? (link) => catalogLink(link, config.publicURL, cursors.seal) : undefined,
      onBytes: metrics ? (direction, bytes) => metrics.bytesStreamed.inc({ direction }, bytes) : undefined,
    });
  };
  return Object.assign(handler, {
    async close() {
      forwarder?.close();
      await upstreamAuth?.close();
    },
  });
}
