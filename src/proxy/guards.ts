import type { IncomingMessage } from 'node:http';
import { OciError } from '../oci/errors.js';
import { classify, isRouteError, type Route } from '../oci/route.js';
import { formatScope } from '../oci/scope.js';
import type { Granted } from './authorize.js';
import type { Upstream } from '../upstream/upstream.js';

/**
 * The guard stage, between authorize and forward: each guard may refuse (an OciError the client
 * prints), rewrite the route (a tag into a digest) or pass (undefined). Guards run in order; the
 * first refusal wins and a rewrite is what the next guard and the forwarder see. One guard per file;
 * the production list starts empty.
 */

/**
 * The upstream the request goes to: a guard asks it with the proxy's own credentials through
 * `upstream.request(path, { method: 'HEAD', scopes })` (bounded, http/outbound.ts).
 */
export type GuardUpstream = Upstream;

export interface GuardContext {
  req: IncomingMessage;
  /** The route as authorized, or as the guard before rewrote it. */
  route: Route;
  /** Who, and what the token holds. */
  grant: Pick<Granted, 'identity' | 'anonymous' | 'access'>;
  upstream: GuardUpstream;
}

/** Named functions: the name is what a refusal or a widening rewrite is logged under. */
export type Guard = (ctx: GuardContext) => Promise<OciError | Route | undefined>;

/** The guards every proxied request passes; the next issues add theirs here. */
export const GUARDS: readonly Guard[] = [];

type GuardOutcome =
  | { route: Route }
  /** `widened`: the guard's rewrite left what was authorized (a bug in the guard, hence a 500). */
  | { refused: OciError; guard: string; widened?: true };

const WIDENED = new OciError(500, 'UNKNOWN', 'internal error: a guard rewrote the request beyond what was authorized');

const scopesKey = (r: Route): string => r.scopes.map(formatScope).join(' ');

/**
 * A rewrite stays inside what was authorized: same method, repository, mount source and scopes, and
 * the route is what its own path and query classify to (so the forwarded path says what the route
 * says, and no query smuggles a mount in). Pure.
 */
export function withinAuthorized(authorized: Route, rewritten: Route): boolean {
  if (rewritten.method !== authorized.method || rewritten.name !== authorized.name || rewritten.mountFrom !== authorized.mountFrom) return false;
  if (scopesKey(rewritten) !== scopesKey(authorized)) return false;
  const again = classify(rewritten.method, rewritten.path, rewritten.query.replace(/^\?/, ''));
  if (isRouteError(again) || again.notFound || rewritten.notFound) return false;
  return (
    again.kind === rewritten.kind &&
    again.name === rewritten.name &&
    again.reference === rewritten.reference &&
    again.path === rewritten.path &&
    again.query === rewritten.query &&
    again.mountFrom === rewritten.mountFrom &&
    scopesKey(again) === scopesKey(rewritten)
  );
}

/** Runs the guards in order over the authorized route: the route to forward, or the first refusal. Writes nothing. */
export async function runGuards(guards: readonly Guard[], ctx: GuardContext): Promise<GuardOutcome> {
  const authorized = ctx.route;
  let route = authorized;
  for (const [i, guard] of guards.entries()) {
    const name = guard.name || `guard #${i}`;
    const answer = await guard({ ...ctx, route });
    if (answer === undefined || answer === route) continue;
    if (answer instanceof OciError) return { refused: answer, guard: name };
    if (!withinAuthorized(authorized, answer)) return { refused: WIDENED, guard: name, widened: true };
    route = answer;
  }
  return { route };
}
