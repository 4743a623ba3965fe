import type { IncomingMessage } from 'node:http';
import { OciError } from '../oci/errors.js';
import { classify, isRouteError, type Route } from '../oci/route.js';
import type { RouteKind } from '../oci/route-kinds.js';
import { formatScope } from '../oci/scope.js';
import type { Granted } from './authorize.js';
import type { Upstream } from '../upstream/upstream.js';

/**
 * The guard stage, between authorize and forward: each guard may refuse (an OciError the client
 * prints), rewrite the route (a tag into a digest), pass (undefined), or pass holding something for
 * the forward (GuardHold: the body it read, a lock). Guards run in order; the first refusal wins and
 * a rewrite is what the next guard and the forwarder see. One guard per file (proxy/guards/); the
 * production list is built from the config and policy (guards/production.ts).
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
  /** The route as authorized (rules see the tag the client named, not the digest it was rewritten to). */
  authorized?: Route;
  /** Who, and what the token holds. */
  grant: Pick<Granted, 'identity' | 'anonymous' | 'access'>;
  upstream: GuardUpstream;
  /** The request body an earlier guard read (a capped manifest): the stream is consumed, read this. */
  body?: Buffer;
  /** The signature verdict of the manifest, when a trust policy applies (the signatures guard, before the rules). */
  image?: ImageFacts;
}

/** What request-time rules see of an image's signatures (`image.verified`, `image.signers`). */
export interface ImageFacts {
  verified: boolean;
  signers: string[];
}

/**
 * A pass that holds something for the forward: `body`, the request body the guard read, is sent
 * instead of the (consumed) request stream — only a capped manifest is ever read; `release` runs
 * once when the exchange ends or a later guard refuses (a lock, a cache entry to forget).
 */
export interface GuardHold {
  hold: true;
  route?: Route;
  body?: Buffer;
  release?: () => void;
  /** The upstream's answer must carry this Docker-Content-Digest (and a GET's body hash to it): the digest verified. */
  expectDigest?: string;
  image?: ImageFacts;
  /** Headers for the client's answer, over the upstream's of the same name (the limit guard's RateLimit-*). */
  headers?: Record<string, string>;
}

/** Named functions: the name is what a refusal or a widening rewrite is logged under. */
export type Guard = (ctx: GuardContext) => Promise<OciError | Route | GuardHold | undefined>;

/** The requests a guard can act on, by method and route kind (absent: all); the others skip it unasked. */
export interface GuardScope {
  methods?: readonly string[];
  kinds?: readonly RouteKind[];
}

const scopes = new WeakMap<Guard, GuardScope>();

/** The guard, declared to act only on requests in `scope`. */
export function scopedGuard(guard: Guard, scope: GuardScope): Guard {
  scopes.set(guard, scope);
  return guard;
}

const NONE: readonly Guard[] = Object.freeze([]);

/**
 * The guards a request of this method and route kind passes, decided once per pair: most requests
 * (a blob GET with no signature policy, any HEAD without rules) pass none, and then the handler
 * skips the stage without an await. Pure but for the memo (bounded: methods × kinds).
 */
export function guardPlan(guards: readonly Guard[]): (method: string, kind: RouteKind) => readonly Guard[] {
  const memo = new Map<string, readonly Guard[]>();
  return (method, kind) => {
    const key = `${method} ${kind}`;
    let plan = memo.get(key);
    if (plan) return plan;
    const active = guards.filter((g) => {
      const s = scopes.get(g);
      return !s || ((!s.methods || s.methods.includes(method)) && (!s.kinds || s.kinds.includes(kind)));
    });
    plan = active.length ? active : NONE;
    if (memo.size < 256) memo.set(key, plan);
    return plan;
  };
}

/** What to forward: the route, the body a guard read (if any), and what to run when the exchange ends. */
export interface Forwardable {
  route: Route;
  body?: Buffer;
  release?: () => void;
  expectDigest?: string;
  headers?: Record<string, string>;
}

type GuardOutcome =
  | Forwardable
  /** `widened`: the guard's rewrite left what was authorized (a bug in the guard, hence a 500). */
  | { refused: OciError; guard: string; widened?: true; reason?: string };

/** Why a guard refused, for the log line (the client's message may hide it: `explainDenials: false`). */
const reasons = new WeakMap<OciError, string>();
export function explained(err: OciError, reason: string): OciError {
  reasons.set(err, reason);
  return err;
}

const WIDENED = new OciError(500, 'UNKNOWN', 'internal error: a guard rewrote the request beyond what was authorized');

const scopesKey = (r: Route): string => r.scopes.map(formatScope).join(' ');

/**
 * A rewrite stays inside what was authorized: same method, repository, mount source and scopes, and
 * the route is what its own path and query classify to (so the forwarded path says what the route
 * says, and no query smuggles a mount in). Pure.
 */
export function withinAuthorized(authorized: Route, rewritten: Route): boolean {
  if (
    rewritten.method !== authorized.method ||
    rewritten.name !== authorized.name ||
    rewritten.mountFrom !== authorized.mountFrom
  )
    return false;
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

const isHold = (x: Route | GuardHold): x is GuardHold => 'hold' in x;

/** Runs the guards in order over the authorized route: what to forward, or the first refusal. Writes nothing. */
export async function runGuards(guards: readonly Guard[], ctx: GuardContext): Promise<GuardOutcome> {
  const authorized = ctx.route;
  let route = authorized;
  let body: Buffer | undefined;
  let image: ImageFacts | undefined;
  let expectDigest: string | undefined;
  let headers: Record<string, string> | undefined;
  const releases: (() => void)[] = [];
  const releaseAll = (): void => releases.splice(0).forEach((r) => r());
  try {
    for (const [i, guard] of guards.entries()) {
      const name = guard.name || `guard #${i}`;
      const answer = await guard({ ...ctx, route, authorized, ...(body ? { body } : {}), ...(image ? { image } : {}) });
      if (answer === undefined || answer === route) continue;
      if (answer instanceof OciError) {
        releaseAll();
        const reason = reasons.get(answer);
        return { refused: answer, guard: name, ...(reason ? { reason } : {}) };
      }
      if (isHold(answer) && answer.release) releases.push(answer.release);
      if (isHold(answer) && answer.body) body = answer.body;
      if (isHold(answer)) ({ image = image, expectDigest = expectDigest } = answer);
      if (isHold(answer) && answer.headers) headers = { ...headers, ...answer.headers };
      const next = isHold(answer) ? (answer.route ?? route) : answer;
      if (next === route) continue;
      if (!withinAuthorized(authorized, next)) {
        releaseAll();
        return { refused: WIDENED, guard: name, widened: true };
      }
      route = next;
    }
  } catch (err) {
    releaseAll();
    throw err;
  }
  const extra = {
    ...(body ? { body } : {}),
    ...(expectDigest ? { expectDigest } : {}),
    ...(headers ? { headers } : {}),
  };
  return { route, ...extra, ...(releases.length ? { release: releaseAll } : {}) };
}
