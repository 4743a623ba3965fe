import type { Config } from '../config/types.js';
import { defaultUpstream, upstreamNameOf } from '../config/upstreams.js';
import type { Logger } from '../log.js';
import { createIdentityVerifier } from '../identity/verifier.js';
import type { IdentityVerifier } from '../identity/types.js';
import { loadPolicies } from '../policy/load.js';
import type { PolicyEngine } from '../policy/types.js';
import { createProxyHandler, type ProxyHandler } from '../proxy/handler.js';
import type { Guard } from '../proxy/guards.js';
import { createTokenHandler } from '../token/endpoint.js';
import { loadKeyRing, type KeyRing } from '../token/signing-keys.js';
import { createRegistryTokenVerifier } from '../token/verify.js';
import type { RegistryTokenVerifier } from '../token/types.js';
import { sendJson } from '../http/response.js';
import { createApp, type AppRoutes, type AppState } from './app.js';
import { createUpstreamsProbe } from '../upstream/probe.js';
import { createUpstreams, type Upstream } from '../upstream/upstream.js';
import { productionGuards } from '../proxy/guards/production.js';
import type { Trust } from '../trust/verify.js';
import { startListener, type Listener } from './listen.js';
import { createMetrics, type Metrics } from '../http/metrics.js';
import { createRateLimiter } from '../http/rate-limit.js';
import { clientIPResolver } from '../http/client-ip.js';
import { createLimits, limitsReadiness, withLimitGuard } from './limits.js';
import type { Limiter } from '../limits/types.js';
import { createAuditor } from '../audit/auditor.js';
import { startTracing } from '../tracing/start.js';

export interface Runtime {
  config: Config;
  logger: Logger;
  keys: KeyRing;
  policy: PolicyEngine;
  identity: IdentityVerifier;
  tokens: RegistryTokenVerifier;
  metrics: Metrics;
  proxy: ProxyHandler;
  /** Signature verdicts for `signatures:` entries (undefined: none configured); the signature guard asks it. */
  trust?: Trust;
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
  /** Minimum time between JWKS refetches on unknown `kid`s (default 10 s; tests shorten it). */
  refetchIntervalMs?: number;
  /** A worker of `workers: N`: the primary's ephemeral signing key, and /metrics of all workers together. */
  sharedEphemeralPem?: string;
  metricsText?: () => Promise<string>;
  /** The proxy's guard stage instead of the production list (tests only). */
  guards?: readonly Guard[];
}

/** The process's own endpoints: its public keys, liveness, readiness (with the reasons) and metrics. */
function serviceRoutes(d: {
  keys: KeyRing;
  identity: IdentityVerifier;
  probe: ReturnType<typeof createUpstreamsProbe>;
  metrics: Metrics;
  state: AppState;
  metricsText?: () => Promise<string>;
  limits?: Limiter;
}): Omit<AppRoutes, 'token' | 'v2'> {
  return {
    jwks: (_req, res) => sendJson(res, 200, d.keys.jwks(), { 'cache-control': 'public, max-age=60' }),
    healthz: (_req, res) => sendJson(res, 200, { status: 'ok' }),
    readyz: async (_req, res) => {
      const reasons: string[] = [];
      if (d.state.draining) reasons.push('shutting down');
      if (!d.identity.ready()) reasons.push('identity issuer keys not loaded yet');
      const up = await d.probe.ready();
      if (!up.ok) reasons.push(up.reason!);
      const limits = limitsReadiness(d.limits);
      if (limits.reason) reasons.push(limits.reason);
      const body = reasons.length ? { status: 'not ready', reasons } : { status: 'ready' };
      sendJson(res, reasons.length ? 503 : 200, limits.state ? { ...body, limits: limits.state } : body);
    },
    metrics: async (_req, res) => {
      const text = await (d.metricsText ? d.metricsText() : d.metrics.registry.metrics());
      res.writeHead(200, { 'content-type': d.metrics.registry.contentType });
      res.end(text);
    },
  };
}

function logListening(logger: Logger, config: Config, listener: Listener, rules: number): void {
  logger.info(
    {
      url: listener.url,
      publicURL: config.publicURL,
      // not `service`: every line's base field already says which program wrote it
      tokenService: config.service,
      upstream: defaultUpstream(config.upstreams)?.url,
      issuers: config.issuers.map((i) => i.name),
      rules,
    },
    'registry-auth-proxy listening',
  );
}

/**
 * Policies and signing keys, loaded before anything listens (a bad file fails start-up), with the
 * warnings a config earns that can grant nothing or accept no identity token.
 */
async function loadPolicyAndKeys(
  config: Config,
  logger: Logger,
  options: RuntimeOptions,
): Promise<{ policy: PolicyEngine; keys: KeyRing }> {
  const policy = loadPolicies(config.policies, upstreamNameOf(config.upstreams));
  if (policy.rules.length === 0)
    logger.warn({ policies: config.policies }, 'no policy rules loaded: every request will be denied');
  const keys = await loadKeyRing(config.tokens, logger, {
    sharedEphemeralPem: options.sharedEphemeralPem,
    configFile: config.file,
  });
  if (config.issuers.length === 0 && !config.anonymous)
    logger.warn('no identity issuer configured: no identity token can be accepted');
  return { policy, keys };
}

/** The two verifiers: of the clients' identity tokens (issuer keys, fetched and counted) and of the registry tokens the proxy signs. */
function createVerifiers(config: Config, logger: Logger, keys: KeyRing, metrics: Metrics, options: RuntimeOptions) {
  const identity = createIdentityVerifier(config.issuers, {
    logger,
    configFile: config.file,
    refetchIntervalMs: options.refetchIntervalMs,
    onKeysFetched: (issuer, ok) => metrics.jwksRefreshes.inc({ issuer, result: ok ? 'ok' : 'error' }),
  });
  return { identity, tokens: createRegistryTokenVerifier(keys, { issuer: config.publicURL, service: config.service }) };
}

/** The token endpoint's rate limits as the limiter takes them. Pure. */
function tokenRateLimits(limits: Config['limits']): Parameters<typeof createRateLimiter>[0] {
  return { perAddress: limits.tokenPerClient, perIdentity: limits.tokenPerIdentity, global: limits.tokenGlobal };
}

/** Signature verdicts when `signatures:` has entries; sigstore-js is loaded only then (~20 MB of RSS at start-up). */
async function createTrustIfConfigured(
  config: Config,
  upstreams: readonly Upstream[],
  logger: Logger,
  metrics: Metrics,
): Promise<Trust | undefined> {
  if (!config.signatures?.length) return undefined;
  return (await import('../trust/verify.js')).createTrust(config, upstreams, logger, metrics);
}

/** Starts serving `config` as decided (in-cluster mode included: server/in-cluster.ts, once per process model). */
export async function startRuntime(config: Config, logger: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  const { policy, keys } = await loadPolicyAndKeys(config, logger, options);
  const metrics = createMetrics();
  const { identity, tokens } = createVerifiers(config, logger, keys, metrics, options);
  const state = { draining: false };
  // One Upstream per configured upstream, shared by forwarder and probe: one credential refresher each.
  const upstreams = createUpstreams(config, logger, metrics);
  // Keys and the trusted root are read now: a bad file stops start-up, naming file and key.
  const trust = await createTrustIfConfigured(config, upstreams, logger, metrics);
  const limits = await createLimits(config, logger, metrics.registry);
  const guards = withLimitGuard(
    limits,
    options.guards ?? productionGuards(config, policy, trust && { trust, logger }),
    config.service,
  );
  const auditor = createAuditor(config, logger, metrics.registry);
  const tracing = await startTracing(config, logger);
  const pathDeps = { config, logger, policy, metrics, keys, auditor, tracing };
  const proxy = createProxyHandler({ ...pathDeps, upstreams, tokens, trust, draining: () => state.draining, guards });
  const probe = createUpstreamsProbe(upstreams, logger);
  const limiter = createRateLimiter(tokenRateLimits(config.limits));
  const token = createTokenHandler({ ...pathDeps, identity, limiter, limits });

  const app = createApp(
    {
      token,
      v2: proxy,
      ...serviceRoutes({ keys, identity, probe, metrics, state, metricsText: options.metricsText, limits }),
    },
    logger,
    metrics,
    state,
    clientIPResolver(config.trustedProxies),
  );
  void identity.warmUp();
  const listener = await startListener(config, app, logger);
  logListening(logger, config, listener, policy.rules.length);
  return {
    config,
    logger,
    keys,
    policy,
    identity,
    tokens,
    metrics,
    proxy,
    trust,
    listener,
    url: listener.url,
    async stop(graceMs = config.shutdownGrace) {
      state.draining = true;
      await listener.close(graceMs);
      await proxy.close();
      await identity.close();
      await Promise.all([...upstreams.map((u) => u.close()), limits?.close()]);
      await Promise.all([auditor.close(), tracing?.close()]);
      keys.close();
    },
  };
}
