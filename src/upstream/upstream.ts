import type { Config, NamedUpstream, UpstreamConfig } from '../config/types.js';
import { registryOf } from '../config/upstreams.js';
import { upstreamAgents, type UpstreamAgents } from '../http/agents.js';
import type { Metrics } from '../http/metrics.js';
import { outbound, type OutboundAnswer } from '../http/outbound.js';
import type { Logger } from '../log.js';
import type { Scope } from '../oci/scope.js';
import { createUpstreamAuth } from './auth.js';
import { renewalMetrics } from './renewal.js';
import type { UpstreamAuth } from './types.js';

/**
 * One configured upstream as the proxy talks to it: its pools, its credentials (one refresher per
 * upstream and process) and a bounded call with them. Built once at start-up and shared by the
 * forwarder, the readiness probe and the guards.
 */
export interface Upstream {
  /** `upstreams[].name` ('' for a lone `upstream:`). */
  readonly name: string;
  /** The repository-name prefix routed here ('' for the default upstream). */
  readonly prefix: string;
  readonly url: string;
  /** The registry it stands for (config/upstreams.ts registryOf): mirror mode's `ns`. */
  readonly registry: string;
  /** The rest of its configuration (timeout, auth kind, redirects, CA file). */
  readonly config: UpstreamConfig;
  readonly agent: UpstreamAgents;
  readonly auth: UpstreamAuth;
  /**
   * One call to the upstream with the proxy's own credentials for `scopes`, read through the
   * bounded reader (http/outbound.ts); a 401 drops the credential it refused. Fails when no
   * credential can be had (upstream/failure.ts upstreamAuthFailureError tells the client which side).
   */
  request(path: string, init?: UpstreamRequest): Promise<OutboundAnswer>;
  close(): Promise<void>;
}

export interface UpstreamRequest {
  method?: 'GET' | 'HEAD';
  scopes?: Scope[];
  headers?: Record<string, string>;
  /** Default: the upstream's timeout. */
  timeoutMs?: number;
  maxBytes?: number;
}

function createUpstream(entry: NamedUpstream, logger: Logger, metrics?: Metrics): Upstream {
  const { name, prefix, ...config } = entry;
  const agent = upstreamAgents(config);
  const auth = createUpstreamAuth(
    config,
    logger,
    { dispatcher: agent.outbound, timeoutMs: config.timeout },
    renewalMetrics(metrics, { name, url: config.url }),
  );
  return {
    name,
    prefix,
    url: config.url,
    registry: registryOf(config),
    config,
    agent,
    auth,
    async request(path, init = {}) {
      const scopes = init.scopes ?? [];
      const authorization = await auth.authorization(scopes);
      const headers = { ...init.headers, ...(authorization ? { authorization } : {}) };
      const { timeoutMs = config.timeout, method = 'GET', maxBytes } = init;
      const answer = await outbound(`${config.url}${path}`, {
        dispatcher: agent.outbound,
        timeoutMs,
        method,
        headers,
        maxBytes,
      });
      if (answer.status === 401) auth.invalidate(scopes);
      return answer;
    },
    async close() {
      await auth.close();
      await agent.close();
    },
  };
}

/** Every configured upstream, in the config's order. */
export function createUpstreams(config: Pick<Config, 'upstreams'>, logger: Logger, metrics?: Metrics): Upstream[] {
  return config.upstreams.map((u) => createUpstream(u, logger, metrics));
}
