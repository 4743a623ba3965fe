import { DEFAULT_LISTEN, DEV_LISTEN, DEV_POLICY_PATH, defaultPolicyPath } from './defaults.js';
import { ConfigError } from './errors.js';
import { duration, httpURL, logLevel, seconds } from './fields.js';
import { ISSUER_NAME, issuerConfig } from './issuer-schema.js';
import { parseOrThrow } from './issues.js';
import { listenAddress, urlHost, type ListenAddress } from './net.js';
import { resolveUpstreams, slowest, withDefaultUpstream } from './upstreams.js';
import { configFileSchema, tokenTTLRange, type ConfigFile } from './schema.js';
import { upstreamSchema, upstreamURL } from './upstream-schema.js';
import { workersSetting } from './workers.js';
import type { Config, IssuerConfig, LimitsConfig, TokensConfig, UpstreamConfig } from './types.js';

/**
 * From a parsed file, flags and env to the frozen Config. Precedence everywhere: flags > config
 * file > (--dev: dev defaults) > defaults. A flag's problem names the flag (`--upstream`), never the
 * file's key it overrides: the file is not where the fix goes.
 */

/** Command-line flags of `serve`; each maps onto a config key (CONTRACT §1). */
export interface ServeFlags {
  config?: string;
  upstream?: string;
  listen?: string;
  publicUrl?: string;
  service?: string;
  issuer?: string[];
  /** Names of the --issuer issuers, in order (policies see identity.issuerName). */
  issuerName?: string[];
  /** CA for the --issuer issuers' HTTPS (discovery and JWKS). */
  caFile?: string;
  audience?: string[];
  policy?: string;
  signingKey?: string;
  tokenTtl?: string;
  /** `--workers <n|auto>`, as typed. */
  workers?: string;
  dev?: boolean;
  logLevel?: string;
}

type Fail = (keyPath: string, problem: string) => never;

/** Validates an already-parsed config document and overlays flags and env (exported for tests). */
export function buildConfig(
  raw: Record<string, unknown>,
  flags: ServeFlags = {},
  file?: string,
  env: NodeJS.ProcessEnv = {},
): Config {
  const doc = parseOrThrow(configFileSchema, raw, file);
  const fail: Fail = (keyPath, problem) => {
    throw new ConfigError(file, keyPath, problem);
  };
  const listen =
    flags.listen !== undefined
      ? parseOrThrow(listenAddress, flags.listen, file, '--listen')
      : (doc.listen ?? parseOrThrow(listenAddress, flags.dev ? DEV_LISTEN : DEFAULT_LISTEN, file, 'listen'));
  const publicURLGiven = flags.publicUrl ?? doc.publicURL;
  const publicURLKey = flags.publicUrl !== undefined ? '--public-url' : 'publicURL';
  const publicURL = parseOrThrow(
    httpURL,
    publicURLGiven ?? derivedPublicURL(listen, doc.tls !== undefined),
    file,
    publicURLKey,
  ).replace(/\/+$/, '');
  const service = flags.service ?? doc.service ?? new URL(publicURL).host;
  const single = resolveUpstream(doc, flags, env, file, fail);
  const upstreams = resolveUpstreams(doc, single, fail);
  return deepFreeze({
    file,
    listen,
    publicURL,
    publicURLDerived: publicURLGiven === undefined,
    service,
    tls: doc.tls,
    upstreams,
    issuers: resolveIssuers(doc, flags, service, file, fail),
    tokens: resolveTokens(doc.tokens, flags, file),
    policies: flags.policy ?? doc.policies ?? (flags.dev ? DEV_POLICY_PATH : defaultPolicyPath()),
    anonymous: doc.anonymous,
    explainDenials: doc.explainDenials,
    limits: resolveLimits(doc.limits, slowest(upstreams), fail),
    audit: doc.audit,
    ...(doc.tracing ? { tracing: doc.tracing } : {}),
    trustedProxies: doc.trustedProxies,
    ...(doc.signatures ? { signatures: doc.signatures } : {}),
    signatureLookup: doc.signatureLookup,
    shutdownGrace: doc.shutdownGrace,
    workers:
      flags.workers === undefined
        ? doc.workers
        : parseOrThrow(
            workersSetting,
            /^\d+$/.test(flags.workers) ? Number(flags.workers) : flags.workers,
            file,
            '--workers',
          ),
    logLevel: resolveLogLevel(doc, flags, env, file),
    dev: flags.dev ?? false,
  });
}

/**
 * Derived only for local use: `serve` refuses a derived publicURL on a non-loopback listener
 * (listenExposureProblem), since remote clients would be sent to their own loopback for tokens.
 */
function derivedPublicURL(listen: ListenAddress, tls: boolean): string {
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host;
  return `${tls ? 'https' : 'http'}://${urlHost(host)}:${listen.port}`;
}

function resolveUpstream(
  doc: ConfigFile,
  flags: ServeFlags,
  env: NodeJS.ProcessEnv,
  file: string | undefined,
  fail: Fail,
): UpstreamConfig | undefined {
  // --dev with no upstream anywhere runs an embedded registry (serve adds it then).
  const fromEnv = flags.dev ? env.RAP_UPSTREAM || undefined : undefined;
  if (!(flags.upstream ?? doc.upstream?.url ?? fromEnv)) {
    return doc.upstream ? fail('upstream.url', 'is required when upstream is set') : undefined;
  }
  const url = flags.upstream
    ? parseOrThrow(upstreamURL, flags.upstream, file, '--upstream')
    : (doc.upstream?.url ?? parseOrThrow(upstreamURL, fromEnv, file, 'RAP_UPSTREAM'));
  return doc.upstream ? { ...doc.upstream, url } : upstreamConfig(url);
}

/** An upstream at `url` with every other setting at its default (`--upstream`, the dev registry). */
export function upstreamConfig(url: string): UpstreamConfig {
  return { ...upstreamSchema.parse({}), url };
}

function resolveIssuers(
  doc: ConfigFile,
  flags: ServeFlags,
  service: string,
  file: string | undefined,
  fail: Fail,
): IssuerConfig[] {
  // --audience without --issuer applies to the file's issuers.
  const audiences = flags.audience?.length && !flags.issuer?.length ? flags.audience : undefined;
  const fromFile = (doc.issuers ?? []).map((e): IssuerConfig => ({
    ...e,
    audiences: audiences ?? e.audiences ?? [service],
  }));
  const issuers = [...fromFile, ...flagIssuers(flags, service, file, fail)];
  const names = new Set<string>();
  issuers.forEach((iss, i) => {
    if (names.has(iss.name)) fail(`issuers[${i}].name`, `duplicate issuer name "${iss.name}"`);
    if (iss.name === 'anonymous') fail(`issuers[${i}].name`, '"anonymous" is reserved');
    names.add(iss.name);
  });
  return issuers;
}

function flagIssuers(flags: ServeFlags, service: string, file: string | undefined, fail: Fail): IssuerConfig[] {
  const urls = flags.issuer ?? [];
  const names = flags.issuerName;
  if (names?.length && names.length !== urls.length) {
    fail(
      '--issuer-name',
      `names the --issuer issuers in order: ${names.length} name(s) for ${urls.length} --issuer(s)`,
    );
  }
  if (flags.caFile !== undefined && urls.length === 0)
    fail('--ca-file', 'applies to --issuer issuers; in a config file set issuers[].caFile');
  return urls.map((url, i) => {
    parseOrThrow(httpURL, url, file, `--issuer[${i}]`);
    const name = names?.[i] ?? (urls.length === 1 ? 'default' : `issuer${i + 1}`);
    if (!ISSUER_NAME.test(name)) fail('--issuer-name', `"${name}": use letters, digits, ".", "_" and "-"`);
    const audiences = flags.audience?.length ? flags.audience : [service];
    return issuerConfig({ name, issuer: url, caFile: flags.caFile, audiences }, { keyPath: `--issuer[${i}]`, file });
  });
}

function resolveTokens(tokens: TokensConfig, flags: ServeFlags, file: string | undefined): TokensConfig {
  let { ttl } = tokens;
  if (flags.tokenTtl !== undefined) {
    const ms = parseOrThrow(duration, flags.tokenTtl, file, '--token-ttl');
    ttl = seconds(parseOrThrow(tokenTTLRange, ms, file, '--token-ttl'));
  }
  return { ...tokens, ttl, signingKeyFile: flags.signingKey ?? tokens.signingKeyFile };
}

/** The flag, else the file's key, else RAP_LOG_LEVEL: each checked where it came from (the file's by the schema). */
function resolveLogLevel(doc: ConfigFile, flags: ServeFlags, env: NodeJS.ProcessEnv, file: string | undefined): string {
  if (flags.logLevel !== undefined) return parseOrThrow(logLevel, flags.logLevel, file, '--log-level');
  return (
    doc.logLevel ?? (env.RAP_LOG_LEVEL ? parseOrThrow(logLevel, env.RAP_LOG_LEVEL, file, 'RAP_LOG_LEVEL') : 'info')
  );
}

function resolveLimits(limits: ConfigFile['limits'], upstream: UpstreamConfig | undefined, fail: Fail): LimitsConfig {
  const { idleTimeout } = limits;
  // A request waiting for a slow upstream moves no bytes on the client's connection until the
  // upstream watchdog answers 504: the idle cut must come after that answer, never before it.
  if (idleTimeout !== undefined && idleTimeout !== 0 && upstream && idleTimeout <= upstream.timeout) {
    fail('limits.idleTimeout', `must be longer than upstream.timeout (${upstream.timeout} ms), or 0 to disable`);
  }
  // Far above upstream.timeout (30s) and the issuers' timeouts, so only a dead peer is cut; a slow
  // transfer that still moves bytes never is. Raised to 2 × upstream.timeout when that is longer.
  return { ...limits, idleTimeout: idleTimeout ?? Math.max(300_000, 2 * (upstream?.timeout ?? 0)) };
}

/** What `serve` adds after loading: the dev issuer and registry, the in-cluster issuer. */
interface ConfigAdditions {
  issuers?: readonly IssuerConfig[];
  /** The dev registry, as the default upstream (only when none is configured). */
  upstream?: UpstreamConfig;
  signingKeyFile?: string;
}

/** A new frozen Config with `add` applied: a loaded Config is never changed in place. */
export function extendConfig(config: Config, add: ConfigAdditions): Config {
  return deepFreeze({
    ...config,
    issuers: [...config.issuers, ...(add.issuers ?? [])],
    upstreams: withDefaultUpstream(config.upstreams, add.upstream),
    tokens: { ...config.tokens, signingKeyFile: config.tokens.signingKeyFile ?? add.signingKeyFile },
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
