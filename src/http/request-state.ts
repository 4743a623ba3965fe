import type { IncomingMessage } from 'node:http';

/**
 * What the app learns about a request once, at the door, and later stages read back: kept beside the
 * request in a WeakMap (gone with it), never cast onto it.
 */
interface RequestState {
  /** The id every log line of this request carries (server/app.ts: the caller's X-Request-Id or a UUID). */
  requestId?: string;
  /** The client's address as resolved through the trusted proxies (http/client-ip.ts). */
  clientIP?: string;
  /**
   * Its audit event goes to the log stream and carries everything the access line would (status, ms,
   * client, request id): the access line is then left out, one line per request instead of two.
   */
  loggedByAudit?: boolean;
}

const states = new WeakMap<IncomingMessage, RequestState>();

/** This request's state, created empty on first use. */
export function requestState(req: IncomingMessage): RequestState {
  let state = states.get(req);
  if (!state) states.set(req, (state = {}));
  return state;
}
