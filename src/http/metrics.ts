import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The proxy's own upstream credentials (ECR, ACR): how often they are asked for, and any renewal back-off. */
function credentialMetrics(registry: Registry) {
  return {
    credentialRenewals: new Counter({
      name: 'rap_upstream_credential_renewals_total',
      help: "Calls for the proxy's own renewed upstream credential (ECR GetAuthorizationToken, ACR exchange), by upstream and outcome: ok, short-lifetime (came back expired or nearly: renewal backs off), error",
      labelNames: ['upstream', 'outcome'] as const,
      registers: [registry],
    }),
    credentialRenewalBackoff: new Gauge({
      name: 'rap_upstream_credential_renewal_backoff_seconds',
      help: 'Delay before the next renewal of the upstream credential while it comes back too short-lived (0: renewing normally)',
      labelNames: ['upstream'] as const,
      // With workers: the longest back-off of any, not a sum.
      aggregator: 'max',
      registers: [registry],
    }),
  };
}

/** Signature trust (trust/): verdicts and the cost of an uncached one. */
function trustMetrics(registry: Registry) {
  return {
    trustVerdicts: new Counter({
      name: 'rap_trust_verdicts_total',
      help: 'Signature verdicts asked for, by result (verified, unverified, error) and whether the cache answered',
      labelNames: ['result', 'cached'] as const,
      registers: [registry],
    }),
    trustVerification: new Histogram({
      name: 'rap_trust_verification_seconds',
      help: 'Time of an uncached signature verdict: lookups towards the upstream plus verification, by result',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** One registry per server instance (tests start several in one process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'rap_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'rap_http_requests_total',
      help: 'HTTP requests answered, by route and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'rap_http_requests_in_flight',
      help: 'HTTP requests being served now (long blob transfers included)',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'rap_rate_limited_total',
      help: 'Token requests refused with 429, by the budget that was hit (address, identity or global)',
      labelNames: ['scope'] as const,
      registers: [registry],
    }),
    tokenDecisions: new Counter({
      name: 'rap_token_decisions_total',
      help: 'Token endpoint decisions, by issuer and result',
      labelNames: ['issuer', 'result'] as const,
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: 'rap_upstream_response_seconds',
      help: 'Time until the upstream answered with headers, by route (and upstream, with several)',
      labelNames: ['route', 'status', 'upstream'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    bytesStreamed: new Counter({
      name: 'rap_bytes_streamed_total',
      help: 'Body bytes streamed through the proxy, by direction',
      labelNames: ['direction'] as const,
      registers: [registry],
    }),
    upstreamRateLimitRemaining: new Gauge({
      name: 'rap_upstream_ratelimit_remaining',
      help: "Requests left in the upstream's rate-limit window, from its last ratelimit-remaining header (Docker Hub)",
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    ...credentialMetrics(registry),
    ...trustMetrics(registry),
    jwksRefreshes: new Counter({
      name: 'rap_jwks_refreshes_total',
      help: 'JWKS fetches of identity issuers, by issuer and result',
      labelNames: ['issuer', 'result'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
