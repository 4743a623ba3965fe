import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/types.js';
import { anonymousIdentity, type Identity } from '../identity/types.js';
import type { Logger } from '../log.js';
import { covers, lacking, type AccessEntry } from '../oci/access.js';
import { challenge, deniedError, type ChallengeError } from '../oci/challenge.js';
import type { OciError } from '../oci/errors.js';
import { withoutMount, type Route } from '../oci/route.js';
import type { Scope } from '../oci/scope.js';
import { denialDetail, denialMessage, refusalsFor, requesterOf } from '../policy/explain.js';
import { grant } from '../policy/grant.js';
import type { PolicyEngine } from '../policy/types.js';
import { clientIPOf } from '../http/client-ip.js';
import { RegistryTokenError, type RegistryTokenVerifier, type VerifiedRegistryToken } from '../token/types.js';

/**
 * request + token → the authorized route, or the error to answer (a 401 challenge carrying its own
 * WWW-Authenticate, or a 403 that says why), as distribution's AccessController does. Never writes.
 */

interface Authorized {
  /** The route to forward (a mount the token may not make is dropped). */
  route: Route;
  /** Who the token names when it carries an identity (catalog tokens), or the anonymous identity. */
  identity?: Identity;
  /** Let in without credentials by `anonymous: true`. */
  anonymous: boolean;
}

/** What authorize lets through: the decision, and everything the token holds (guards narrow it, never widen it); `subject`: the token's `sub`. */
export type Granted = Authorized & { access: readonly AccessEntry[]; subject?: string };

export function isAuthorized(x: Authorized | OciError): x is Authorized {
  return 'route' in x;
}

interface AuthorizeDeps {
  config: Pick<Config, 'anonymous' | 'publicURL' | 'service' | 'explainDenials'>;
  logger: Logger;
  tokens: RegistryTokenVerifier;
  /** For `anonymous: true` (absent: no anonymous access). */
  policy?: PolicyEngine;
}

type Auth = { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'invalid'; reason: string };

/** The request's credentials, as far as /v2/ is concerned. Pure. */
function bearerOf(req: Pick<IncomingMessage, 'headers' | 'headersDistinct'>): Auth {
  const raw = req.headersDistinct?.authorization ?? (req.headers.authorization ? [req.headers.authorization] : []);
  if (raw.length === 0) return { kind: 'none' };
  if (raw.length > 1) return { kind: 'invalid', reason: 'several Authorization headers' };
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(raw[0]!);
  // Basic credentials on /v2/ are not ours to check: answer with the Bearer challenge.
  if (!m) return /^Basic\s/i.test(raw[0]!) ? { kind: 'none' } : { kind: 'invalid', reason: 'not a Bearer token' };
  return { kind: 'bearer', token: m[1]! };
}

/** What a verified token holds that a decision reads. */
export type Held = Pick<VerifiedRegistryToken, 'access' | 'refused' | 'subject' | 'identity'>;

/** The Bearer challenge for the route's scopes. Pure. */
const challengeFor = (route: Route, config: AuthorizeDeps['config'], error?: ChallengeError): OciError =>
  challenge({ realm: `${config.publicURL}/token`, service: config.service, scopes: route.scopes, error });

/**
 * The route a valid token may take, or why not. Pure. A missing action the policy refused when the
 * token was issued is a 403 (a new token would be the same, so say why); one never asked for is a
 * challenge, and the client fetches a token for it.
 */
export function judge(route: Route, held: Held, config: AuthorizeDeps['config']): Authorized | OciError {
  let effective = route;
  if (route.mountFrom !== undefined && route.mountFrom !== route.name && !covers(held.access, route.scopes[1]!)) {
    // `from` may not be pulled: never forward the mount. Start a plain upload instead, which is
    // what the registry itself does when a mount cannot be satisfied.
    effective = withoutMount(route);
  }
  const missing = effective.scopes.map((s) => lacking(held.access, s)).filter((s): s is Scope => s !== undefined);
  if (missing.length === 0) return { route: effective, identity: held.identity, anonymous: false };
  const explained = refusalsFor(missing, held.refused);
  if (!explained) return challengeFor(effective, config, 'insufficient_scope');
  const who = requesterOf(held.subject);
  return deniedError(
    denialMessage(who, explained, config.explainDenials),
    denialDetail(who, explained, config.explainDenials),
  );
}

/** A request without credentials: let in when `anonymous: true` and the policy grants the anonymous identity every scope. */
function anonymousAccess(route: Route, clientIP: string, deps: AuthorizeDeps): Granted | OciError {
  const { config, policy } = deps;
  if (config.anonymous && policy) {
    const who = anonymousIdentity();
    const { access } = grant(policy, who, route.scopes, { service: config.service, clientIP });
    if (route.scopes.every((s) => covers(access, s))) return { route, identity: who, anonymous: true, access };
  }
  return challengeFor(route, config);
}

/** The authorized route, and who the token names; or the challenge or denial to answer. */
export async function authorize(req: IncomingMessage, route: Route, deps: AuthorizeDeps): Promise<Granted | OciError> {
  const auth = bearerOf(req);
  if (auth.kind === 'none') return anonymousAccess(route, clientIPOf(req), deps);
  if (auth.kind === 'invalid') {
    deps.logger.info({ reason: auth.reason, route: route.kind }, 'rejected malformed Authorization');
    return challengeFor(route, deps.config, 'invalid_token');
  }
  let held: Held;
  try {
    held = await deps.tokens.verify(auth.token);
  } catch (err) {
    if (!(err instanceof RegistryTokenError)) throw err;
    deps.logger.info({ reason: err.message, route: route.kind }, 'rejected registry token');
    return challengeFor(route, deps.config, 'invalid_token');
  }
  const judged = judge(route, held, deps.config);
  return isAuthorized(judged) ? { ...judged, access: held.access, subject: held.subject } : judged;
}
