import type { IncomingMessage } from 'node:http';

/**
 * What the app learns about a request once, at the door, and later stages read back: kept on the
 * request under a symbol only this module holds (gone with it), never cast onto it by callers.
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

/**
 * Not a WeakMap: every request would be an ephemeron the young-generation GC must trace, and a
 * value reaching its key keeps it past scavenges (proxy/audit.ts). A private symbol slot costs a
 * property; in a micro-benchmark of 400 k short-lived keys, half the CPU of a WeakMap (2026-12-06).
 */
const STATE = Symbol('requestState');

type WithState = IncomingMessage & { [STATE]?: RequestState };

/** This request's state, created empty on first use. */
export function requestState(req: IncomingMessage): RequestState {
  return ((req as WithState)[STATE] ??= {});
}
