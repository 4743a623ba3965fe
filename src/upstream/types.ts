import type { Dispatcher } from 'undici';
import type { Scope } from '../oci/scope.js';

/**
 * Credentials of the proxy itself for the upstream — never the client's. Secrets are re-read from
 * their files (rotation) and never logged.
 */
export interface UpstreamAuth {
  /**
   * The Authorization header to send upstream for a request needing `scopes`, if any. `quiet`: a
   * failure is not logged here (the readiness probe logs its own, once per change).
   */
  authorization(scopes: Scope[], opts?: { quiet?: boolean }): Promise<string | undefined>;
  /** Forget a cached upstream token (the upstream refused it). */
  invalidate(scopes: Scope[]): void;
  close(): Promise<void>;
}

/** The outbound side a credential kind calls through: the upstream's bounded pool and its timeout. */
export interface UpstreamHttp {
  dispatcher: Dispatcher;
  timeoutMs: number;
}
