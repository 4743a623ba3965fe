import type { Config } from '../config/types.js';
import { inClusterIssuer } from '../config/in-cluster.js';
import type { Logger } from '../log.js';
import { createIdentityVerifier } from '../identity/verifier.js';
import type { IdentityVerifier } from '../identity/types.js';
import { loadPolicies } from '../policy/load.js';
import type { PolicyEngine } from '../policy/types.js';
import { createProxyHandler, type ProxyHandler } from '../proxy/handler.js';
import { createTokenHandler } from '../token/endpoint.js';
import { loadKeyRing, type KeyRing } from '../token/keys.js';
import { createRegistryTokenVerifier } from '../token/verify.js';
import type { RegistryTokenVerifier } from '../token/types.js';
import { createApp, sendJson } from './app.js';
import { createUpstreamProbe } from './health.js';
import { startListener, type Listener } from './listen.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createRateLimiter } from './rate-limit.js';
import { clientIPResolver } from './client-ip.js';

export interface Runtime {
  config: Config;
  logger: Logger;
  keys: KeyRing;
  policy: PolicyEngine;
  identity: IdentityVerifier;
  tokens: RegistryTokenVerifier;
  metrics: Metrics;
  proxy: ProxyHandler;
  listener: Listener;
  /** Base URL the server listens at. */
  url: string;
  stop(graceMs?: number): Promise<void>;
}

/**
 * The composition root: loads keys and policies (failing before listening), builds the verifiers,
 * the token endpoint and the proxy, and starts the listener.
 */
export interface RuntimeOptions {
  /** Environment and service-account directory for in-cluster auto-configuration (tests inject them). */
  env?: NodeJS.ProcessEnv;
  serviceAccountDir?: string;
  /** Minimum time between JWKS refetches on unknown `kid`s (default 10 s; tests shorten it). */
  refetchIntervalMs?: number;
}

export async function startRuntime(config: Config, logger: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  if (config.issuers.length === 0) {
    const auto = await inClusterIssuer(config.service, { logger, env: options.env, serviceAccountDir: options.serviceAccountDir });
    if (auto) config.issuers.push(auto);
  }
  const policy = loadPolicies(config.policies);
  if (policy.rules.length === 0) logger.warn({ policies: config.policies }, 'no policy rules loaded: every request will be denied');
  const keys = await loadKeyRing(config.tokens, logger);
  if (config.issuers.length === 0 && !config.anonymous) logger.warn('no identity issuer configured: no identity token can be accepted');
  const metrics = createMetrics();
  const identity = createIdentityVerifier(config.issuers, {
    logger,
    refetchIntervalMs: options.refetchIntervalMs,
    onKeysFetched: (issuer, ok) => metrics.jwksRefreshes.inc({ issuer, result: ok ? 'ok' : 'error' }),
  });
  const tokens = createRegistryTokenVerifier(keys, { issuer: config.publicURL, service: config.service });
  const state = { draining: false };
  const proxy = createProxyHandler({ config, logger, tokens, policy, metrics, keys, draining: () => state.draining });
  const probe = createUpstreamProbe(config.upstream, logger);
  const limiter = createRateLimiter(config.limits.tokenPerClient, config.limits.tokenGlobal);
  const token = createTokenHandler({ config, logger, identity, policy, keys, metrics, limiter });

  const app = createApp(
    {
      token,
      v2: proxy,
      jwks: (_req, res) => sendJson(res, 200, keys.jwks(), { 'cache-control': 'public, max-age=60' }),
      healthz: (_req, res) => sendJson(res, 200, { status: 'ok' }),
      readyz: async (_req, res) => {
        const reasons: string[] = [];
        if (state.draining) reasons.push('shutting down');
        if (identity.ready && !identity.ready()) reasons.push('identity issuer keys not loaded yet');
        const up = await probe.ready();
        if (!up.ok) reasons.push(up.reason!);
        sendJson(res, reasons.length ? 503 : 200, reasons.length ? { status: 'not ready', reasons } : { status: 'ready' });
      },
      metrics: async (_req, res) => {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      },
    },
    logger,
    metrics,
    state,
    clientIPResolver(config.trustedProxies),
  );
  void identity.warmUp?.();
  const listener = await startListener(config, app, logger);
  logger.info({ url: listener.url, publicURL: config.publicURL, service: config.service, upstream: config.upstream?.url, issuers: config.issuers.map((i) => i.name), rules: policy.rules.length }, 'registry-auth-proxy listening');
  return {
    config,
    logger,
    keys,
    policy,
    identity,
    tokens,
    metrics,
    proxy,
    listener,
    url: listener.url,
    async stop(graceMs = config.shutdownGrace) {
      state.draining = true;
      await listener.close(graceMs);
      await proxy.close();
      await identity.close?.();
      await probe.close();
      keys.close();
    },
  };
}
