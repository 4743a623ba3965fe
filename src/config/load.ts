import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from './duration.js';
import { ConfigError } from './errors.js';
import { DEV_LISTEN, DEV_POLICY_PATH } from '../dev/defaults.js';
import { PRESET_ISSUERS, WELL_KNOWN_JWKS_URIS } from '../identity/presets.js';
import { parseTrustedProxies } from '../server/client-ip.js';
import {
  PRESETS,
  SIGNING_ALGORITHMS,
  type Config,
  type IssuerConfig,
  type LimitsConfig,
  type RateLimit,
  type Preset,
  type SigningAlgorithm,
  type TokenReviewConfig,
  type UpstreamAuth,
  type UpstreamConfig,
} from './types.js';

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
  dev?: boolean;
  logLevel?: string;
}

type Obj = Record<string, unknown>;

const TOP_KEYS = ['listen', 'publicURL', 'service', 'tls', 'upstream', 'issuers', 'tokens', 'policies', 'anonymous', 'explainDenials', 'limits', 'trustedProxies', 'shutdownGrace', 'logLevel'];

export const DEFAULT_LIMITS: LimitsConfig = {
  tokenPerClient: { rate: 20, burst: 60 },
  tokenGlobal: { rate: 2000, burst: 4000 },
  maxHeaderBytes: 16 * 1024,
  // Docker, podman and containerd send 5–20 header lines; an ingress adds about as many again.
  maxHeaderCount: 100,
  // A token form is a few hundred bytes sent with the head: seconds are plenty, even on slow links.
  tokenBodyTimeout: 10_000,
  // Far above upstream.timeout (30s) and the issuers' timeouts, so only a dead peer is cut; a slow
  // transfer that still moves bytes never is. Raised to 2 × upstream.timeout when that is longer.
  idleTimeout: 300_000,
  // Each client connection costs a file descriptor (and may hold one upstream, ≤ 320 pooled):
  // keep maxConnections + ~400 under the process's fd limit (`ulimit -n`).
  maxConnections: 2048,
  // One address may use an eighth of the total: a node pulling many images in parallel needs tens,
  // so a single peer cannot starve everyone else. Behind an ingress, list it in trustedProxies.
  maxConnectionsPerClient: 256,
};

/** Reads the YAML file (if any), applies flags and env on top, validates, returns a typed Config. Throws ConfigError. */
export function loadConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Config {
  const file = flags.config ?? env.RAP_CONFIG ?? undefined;
  let raw: Obj = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(file, '(file)', `cannot read: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new ConfigError(file, '(file)', `not valid YAML: ${(err as Error).message}`);
    }
    if (doc === null || doc === undefined) doc = {};
    if (!isObj(doc)) throw new ConfigError(file, '(root)', 'must be a mapping');
    raw = doc;
  }
  return buildConfig(raw, flags, file, env);
}

/** Validates an already-parsed config document (exported for tests). */
export function buildConfig(raw: Obj, flags: ServeFlags = {}, file?: string, env: NodeJS.ProcessEnv = {}): Config {
  const v = new Validator(file);
  for (const key of Object.keys(raw)) {
    if (!TOP_KEYS.includes(key)) v.fail(key, `unknown key (known: ${TOP_KEYS.join(', ')})`);
  }

  // Precedence everywhere: flags > config file > (--dev: dev defaults) > defaults.
  const listenStr = flags.listen ?? v.optString(raw, 'listen') ?? (flags.dev ? DEV_LISTEN : '0.0.0.0:8080');
  const listen = parseListen(listenStr, v);

  let tls: Config['tls'];
  if (raw.tls !== undefined) {
    const t = v.obj(raw, 'tls');
    tls = { certFile: v.reqString(t, 'certFile', 'tls.certFile'), keyFile: v.reqString(t, 'keyFile', 'tls.keyFile') };
  }

  const dev = flags.dev ?? false;
  const publicURLGiven = flags.publicUrl ?? v.optString(raw, 'publicURL');
  // Derived only for local use: `serve` refuses a derived publicURL on a non-loopback listener
  // (listenExposureProblem), since remote clients would be sent to their own loopback for tokens.
  const publicURLRaw = publicURLGiven ?? `${tls ? 'https' : 'http'}://${urlHost(listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host)}:${listen.port}`;
  const publicURL = v.url('publicURL', publicURLRaw).replace(/\/+$/, '');
  const service = flags.service ?? v.optString(raw, 'service') ?? new URL(publicURL).host;

  let upstream: UpstreamConfig | undefined;
  const upRaw = raw.upstream !== undefined ? v.obj(raw, 'upstream') : undefined;
  const fileUpURL = upRaw ? v.optString(upRaw, 'url', 'upstream.url') : undefined;
  // --dev with no upstream anywhere runs an embedded registry (serve sets config.upstream then).
  const upURL = flags.upstream ?? fileUpURL ?? (flags.dev ? env.RAP_UPSTREAM || undefined : undefined);
  if (upURL) {
    upstream = {
      url: upstreamBaseURL(flags.upstream ? '--upstream' : fileUpURL ? 'upstream.url' : 'RAP_UPSTREAM', upURL, v),
      caFile: upRaw ? v.optString(upRaw, 'caFile', 'upstream.caFile') : undefined,
      auth: parseUpstreamAuth(upRaw?.auth, v),
      timeout: upRaw?.timeout !== undefined ? v.duration(upRaw.timeout, 'upstream.timeout') : 30_000,
    };
  } else if (upRaw) {
    v.fail('upstream.url', 'is required when upstream is set');
  }

  const issuers: IssuerConfig[] = [];
  if (raw.issuers !== undefined) {
    if (!Array.isArray(raw.issuers)) v.fail('issuers', 'must be a list');
    (raw.issuers as unknown[]).forEach((item, i) => issuers.push(parseIssuer(item, `issuers[${i}]`, service, v)));
  }
  const flagIssuers = flags.issuer ?? [];
  if (flags.issuerName?.length && flags.issuerName.length !== flagIssuers.length) {
    v.fail('--issuer-name', `names the --issuer issuers in order: ${flags.issuerName.length} name(s) for ${flagIssuers.length} --issuer(s)`);
  }
  if (flags.caFile !== undefined && flagIssuers.length === 0) v.fail('--ca-file', 'applies to --issuer issuers; in a config file set issuers[].caFile');
  for (const [i, iss] of flagIssuers.entries()) {
    const url = v.url(`--issuer[${i}]`, iss);
    const name = flags.issuerName?.[i] ?? (flagIssuers.length === 1 ? 'default' : `issuer${i + 1}`);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) v.fail('--issuer-name', `"${name}": use letters, digits, ".", "_" and "-"`);
    issuers.push({
      name,
      issuer: url,
      ...(flags.caFile !== undefined ? { caFile: flags.caFile } : {}),
      audiences: flags.audience?.length ? flags.audience : [service],
      tokenReview: false,
      legacyTokens: false,
      clockSkew: 30,
      timeout: 5000,
      ...(WELL_KNOWN_JWKS_URIS[url] ? { jwksURI: WELL_KNOWN_JWKS_URIS[url] } : {}),
    });
  }
  if (flags.audience?.length && !flags.issuer?.length) {
    for (const iss of issuers) iss.audiences = flags.audience;
  }
  const names = new Set<string>();
  issuers.forEach((iss, i) => {
    if (names.has(iss.name)) v.fail(`issuers[${i}].name`, `duplicate issuer name "${iss.name}"`);
    if (iss.name === 'anonymous') v.fail(`issuers[${i}].name`, '"anonymous" is reserved');
    names.add(iss.name);
  });

  const tokRaw = raw.tokens !== undefined ? v.obj(raw, 'tokens') : {};
  // A misspelt refreshTTL must not silently leave the default in force.
  for (const key of Object.keys(tokRaw)) if (!TOKEN_KEYS.includes(key)) v.fail(`tokens.${key}`, `unknown key (known: ${TOKEN_KEYS.join(', ')})`);
  const algorithm = (v.optString(tokRaw, 'algorithm', 'tokens.algorithm') ?? 'ES256') as SigningAlgorithm;
  if (!SIGNING_ALGORITHMS.includes(algorithm)) v.fail('tokens.algorithm', `must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
  const ttlMs = flags.tokenTtl !== undefined ? v.duration(flags.tokenTtl, '--token-ttl') : tokRaw.ttl !== undefined ? v.duration(tokRaw.ttl, 'tokens.ttl') : 300_000;
  if (ttlMs < 60_000 || ttlMs > 24 * 3_600_000) v.fail('tokens.ttl', 'must be between 1m and 24h');
  // Refresh tokens are bearer credentials `docker login` stores on disk: bounded even when the identity
  // token is long-lived (absent: the default in token/issue.ts, 12h).
  const refreshTTLMs = tokRaw.refreshTTL !== undefined ? v.duration(tokRaw.refreshTTL, 'tokens.refreshTTL') : undefined;
  if (refreshTTLMs !== undefined && refreshTTLMs !== 0 && (refreshTTLMs < 60_000 || refreshTTLMs > 7 * 24 * 3_600_000)) {
    v.fail('tokens.refreshTTL', 'must be 0 (no refresh tokens) or between 1m and 7d');
  }

  const anonymous = raw.anonymous === undefined ? false : v.bool(raw.anonymous, 'anonymous');
  // On by default: a refused client is told who was refused what and by which rule (README: Denials).
  const explainDenials = raw.explainDenials === undefined ? true : v.bool(raw.explainDenials, 'explainDenials');
  const limits = parseLimits(raw.limits, v, upstream?.timeout);
  const trustedProxies: string[] = [];
  if (raw.trustedProxies !== undefined) {
    if (!Array.isArray(raw.trustedProxies) || !raw.trustedProxies.every((x) => typeof x === 'string')) v.fail('trustedProxies', 'must be a list of IP addresses or CIDRs');
    trustedProxies.push(...(raw.trustedProxies as string[]));
    try {
      parseTrustedProxies(trustedProxies);
    } catch (err) {
      v.fail('trustedProxies', (err as Error).message);
    }
  }
  const shutdownGrace = raw.shutdownGrace !== undefined ? v.duration(raw.shutdownGrace, 'shutdownGrace') : 25_000;

  return {
    file,
    listen,
    publicURL,
    publicURLDerived: publicURLGiven === undefined,
    service,
    tls,
    upstream,
    issuers,
    tokens: {
      signingKeyFile: flags.signingKey ?? v.optString(tokRaw, 'signingKeyFile', 'tokens.signingKeyFile'),
      certificateFile: v.optString(tokRaw, 'certificateFile', 'tokens.certificateFile'),
      algorithm,
      ttl: Math.round(ttlMs / 1000),
      ...(refreshTTLMs !== undefined ? { refreshTTL: Math.round(refreshTTLMs / 1000) } : {}),
    },
    policies: flags.policy ?? v.optString(raw, 'policies') ?? (flags.dev ? DEV_POLICY_PATH : defaultPolicyPath()),
    anonymous,
    explainDenials,
    limits,
    trustedProxies,
    shutdownGrace,
    logLevel: flags.logLevel ?? v.optString(raw, 'logLevel') ?? env.RAP_LOG_LEVEL ?? 'info',
    dev,
  };
}

/** The policy the package ships (deny by default; Kubernetes namespaces own `<namespace>/…`). */
export const SHIPPED_POLICY_PATH = fileURLToPath(new URL('../../policies/default.yaml', import.meta.url));

/**
 * The policy path when none is configured: `./policies` in the working directory when it exists
 * (a checkout, or the operator's own), else the shipped default — so a globally installed CLI
 * starts anywhere. `serve` logs which one it used.
 */
export function defaultPolicyPath(exists: (path: string) => boolean = existsSync): string {
  return exists('./policies') ? './policies' : SHIPPED_POLICY_PATH;
}

/**
 * Why `serve` must not start, having no way to accept any identity, or undefined. Pure. Without
 * an issuer (and not `anonymous`), every client would be refused while /readyz says ready.
 * Call it after the in-cluster issuer had its chance.
 */
export function missingIssuerProblem(config: Pick<Config, 'issuers' | 'anonymous' | 'dev' | 'file'>): string | undefined {
  if (config.issuers.length > 0 || config.anonymous || config.dev) return undefined;
  return (
    'no identity issuer is configured, so no client could ever get a token. Give one: ' +
    '--issuer <url> --audience <aud> [--issuer-name <name>] [--ca-file <file>] (an OIDC issuer), ' +
    `${config.file ? `an issuers: list in ${config.file}` : '--config <file> with an issuers: list'} (see README "Configuration file"), ` +
    'or --dev for a local trial with an embedded issuer. In a Kubernetes pod the cluster\'s own issuer is used automatically'
  );
}

/** A host as it appears in a URL: IPv6 literals in brackets. */
function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** Loopback only: 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Why `serve` must not start with this listener and publicURL, or undefined. Pure. The token realm
 * is `<publicURL>/token`; derived from a wildcard or other non-loopback address it would read
 * `http://127.0.0.1:<port>/token`, and remote clients would send their identity token to whatever
 * listens on their own loopback. A configured publicURL, or a loopback-only listener, is fine.
 */
export function listenExposureProblem(config: Pick<Config, 'listen' | 'publicURL' | 'publicURLDerived'>): string | undefined {
  if (!config.publicURLDerived || isLoopbackHost(config.listen.host)) return undefined;
  const where = `${urlHost(config.listen.host)}:${config.listen.port}`;
  return (
    `is required when listening on ${where} (not a loopback address): without it clients would be told to fetch tokens from ${config.publicURL}/token, their own machine. ` +
    'Set publicURL (or --public-url) to the URL clients reach the proxy at, e.g. --public-url https://registry.example.com, or listen on loopback only (--listen 127.0.0.1:8080)'
  );
}

function parseListen(s: string, v: Validator): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) return v.fail('listen', `"${s}" is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) v.fail('listen', `port ${port} out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function parseRate(raw: unknown, path: string, def: RateLimit, v: Validator): RateLimit {
  if (raw === undefined) return { ...def };
  if (!isObj(raw)) return v.fail(path, 'must be a mapping {rate, burst} (requests per second; rate 0 disables)');
  for (const key of Object.keys(raw)) if (key !== 'rate' && key !== 'burst') v.fail(`${path}.${key}`, 'unknown key (known: rate, burst)');
  const num = (x: unknown, p: string): number => {
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) v.fail(p, 'must be a number >= 0');
    return x;
  };
  const rate = raw.rate !== undefined ? num(raw.rate, `${path}.rate`) : def.rate;
  const burst = raw.burst !== undefined ? num(raw.burst, `${path}.burst`) : Math.max(def.burst, Math.ceil(rate * 2));
  if (rate > 0 && burst < 1) v.fail(`${path}.burst`, 'must be at least 1 when rate is set');
  return { rate, burst };
}

const LIMIT_KEYS = ['tokenPerClient', 'tokenGlobal', 'maxHeaderBytes', 'maxHeaderCount', 'tokenBodyTimeout', 'idleTimeout', 'maxConnections', 'maxConnectionsPerClient'];

function parseLimits(raw: unknown, v: Validator, upstreamTimeout?: number): LimitsConfig {
  if (raw === undefined) raw = {};
  if (!isObj(raw)) return v.fail('limits', 'must be a mapping');
  for (const key of Object.keys(raw)) if (!LIMIT_KEYS.includes(key)) v.fail(`limits.${key}`, `unknown key (known: ${LIMIT_KEYS.join(', ')})`);
  const int = (key: keyof LimitsConfig, min: number, max: number, what: string): number => {
    const n = raw[key];
    if (n === undefined) return DEFAULT_LIMITS[key] as number;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) v.fail(`limits.${key}`, `must be an integer between ${min} and ${max}${what}`);
    return n;
  };
  const maxHeaderBytes = int('maxHeaderBytes', 4096, 1 << 20, '');
  const maxHeaderCount = int('maxHeaderCount', 32, 10_000, ' (header lines per request)');
  const maxConnections = int('maxConnections', 0, 1_000_000, ' (0 = unlimited)');
  const maxConnectionsPerClient = int('maxConnectionsPerClient', 0, 1_000_000, ' (0 = unlimited)');
  let tokenBodyTimeout = DEFAULT_LIMITS.tokenBodyTimeout;
  if (raw.tokenBodyTimeout !== undefined) {
    tokenBodyTimeout = v.duration(raw.tokenBodyTimeout, 'limits.tokenBodyTimeout');
    if (tokenBodyTimeout < 100 || tokenBodyTimeout > 300_000) v.fail('limits.tokenBodyTimeout', 'must be between 100ms and 5m');
  }
  let idleTimeout = Math.max(DEFAULT_LIMITS.idleTimeout, 2 * (upstreamTimeout ?? 0));
  if (raw.idleTimeout !== undefined) {
    idleTimeout = v.duration(raw.idleTimeout, 'limits.idleTimeout');
    // A request waiting for a slow upstream moves no bytes on the client's connection until the
    // upstream watchdog answers 504: the idle cut must come after that answer, never before it.
    if (idleTimeout !== 0 && upstreamTimeout !== undefined && idleTimeout <= upstreamTimeout) {
      v.fail('limits.idleTimeout', `must be longer than upstream.timeout (${upstreamTimeout} ms), or 0 to disable`);
    }
    if (idleTimeout !== 0 && idleTimeout < 500) v.fail('limits.idleTimeout', 'must be at least 500ms, or 0 to disable');
  }
  return {
    tokenPerClient: parseRate(raw.tokenPerClient, 'limits.tokenPerClient', DEFAULT_LIMITS.tokenPerClient, v),
    tokenGlobal: parseRate(raw.tokenGlobal, 'limits.tokenGlobal', DEFAULT_LIMITS.tokenGlobal, v),
    maxHeaderBytes,
    maxHeaderCount,
    tokenBodyTimeout,
    idleTimeout,
    maxConnections,
    maxConnectionsPerClient,
  };
}

/**
 * The upstream's base URL. A path prefix is supported (a registry served under `/prefix/v2/`, as
 * Distribution's `http.prefix` does): requests get it prepended and `Location`/`Link` answers have it
 * removed. A query, fragment or credentials in the URL would reach every request or be lost: refused.
 */
function upstreamBaseURL(path: string, s: string, v: Validator): string {
  const u = new URL(v.url(path, s));
  if (u.username || u.password) v.fail(path, 'must not carry credentials (use upstream.auth with a passwordFile)');
  if (u.search || u.hash || s.includes('?') || s.includes('#')) v.fail(path, 'must not have a query or fragment');
  if (/\/v2\/*$/.test(u.pathname)) v.fail(path, 'is the registry\'s base URL, without /v2 (the proxy adds /v2/ itself)');
  return s.replace(/\/+$/, '');
}

function parseUpstreamAuth(raw: unknown, v: Validator): UpstreamAuth {
  if (raw === undefined) return { type: 'none' };
  if (!isObj(raw)) return v.fail('upstream.auth', 'must be a mapping');
  const type = v.optString(raw, 'type', 'upstream.auth.type') ?? 'none';
  switch (type) {
    case 'none':
      return { type };
    case 'basic':
    case 'registry-token':
      if (raw.password !== undefined) v.fail('upstream.auth.password', 'secrets are read from files: use passwordFile');
      return {
        type,
        username: v.reqString(raw, 'username', 'upstream.auth.username'),
        passwordFile: v.reqString(raw, 'passwordFile', 'upstream.auth.passwordFile'),
      };
    case 'bearer':
      if (raw.token !== undefined) v.fail('upstream.auth.token', 'secrets are read from files: use tokenFile');
      return { type, tokenFile: v.reqString(raw, 'tokenFile', 'upstream.auth.tokenFile') };
    default:
      return v.fail('upstream.auth.type', `"${type}" is not one of none, basic, bearer, registry-token`);
  }
}

const TOKEN_KEYS = ['signingKeyFile', 'certificateFile', 'algorithm', 'ttl', 'refreshTTL'];

const ISSUER_KEYS = ['name', 'issuer', 'preset', 'audiences', 'jwksURI', 'jwksFile', 'caFile', 'bearerTokenFile', 'tokenReview', 'legacyTokens', 'clockSkew', 'timeout'];

function parseIssuer(item: unknown, path: string, service: string, v: Validator): IssuerConfig {
  if (!isObj(item)) return v.fail(path, 'must be a mapping');
  for (const key of Object.keys(item)) {
    if (!ISSUER_KEYS.includes(key)) v.fail(`${path}.${key}`, `unknown key (known: ${ISSUER_KEYS.join(', ')})`);
  }
  const name = v.reqString(item, 'name', `${path}.name`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) v.fail(`${path}.name`, 'use letters, digits, ".", "_" and "-"');
  const preset = v.optString(item, 'preset', `${path}.preset`) as Preset | undefined;
  if (preset !== undefined && !PRESETS.includes(preset)) v.fail(`${path}.preset`, `must be one of ${PRESETS.join(', ')}`);
  // Presets with one well-known issuer (GitHub Actions, gitlab.com, Google) may omit `issuer`.
  const issuer = v.optString(item, 'issuer', `${path}.issuer`) ?? (preset ? PRESET_ISSUERS[preset] : undefined) ?? v.fail(`${path}.issuer`, 'is required');
  let audiences: string[] = [service];
  if (item.audiences !== undefined) {
    if (!Array.isArray(item.audiences) || item.audiences.length === 0 || !item.audiences.every((a) => typeof a === 'string' && a.length > 0)) {
      v.fail(`${path}.audiences`, 'must be a non-empty list of strings');
    }
    audiences = item.audiences as string[];
  }
  let tokenReview: TokenReviewConfig | false = false;
  if (item.tokenReview === true) tokenReview = { cacheTTL: 30_000 };
  else if (isObj(item.tokenReview)) {
    const tr = item.tokenReview;
    tokenReview = {
      url: tr.url !== undefined ? v.url(`${path}.tokenReview.url`, v.reqString(tr, 'url', `${path}.tokenReview.url`)) : undefined,
      caFile: v.optString(tr, 'caFile', `${path}.tokenReview.caFile`),
      bearerTokenFile: v.optString(tr, 'bearerTokenFile', `${path}.tokenReview.bearerTokenFile`),
      cacheTTL: tr.cacheTTL !== undefined ? v.duration(tr.cacheTTL, `${path}.tokenReview.cacheTTL`) : 30_000,
    };
  } else if (item.tokenReview !== undefined && item.tokenReview !== false) {
    v.fail(`${path}.tokenReview`, 'must be false, true or a mapping {url, caFile, bearerTokenFile, cacheTTL}');
  }
  const legacyTokens = item.legacyTokens === undefined ? false : v.bool(item.legacyTokens, `${path}.legacyTokens`);
  if (legacyTokens && !tokenReview) v.fail(`${path}.legacyTokens`, 'requires tokenReview: only the API server can tell whether a legacy token is still valid');
  if (issuer !== 'kubernetes/serviceaccount') v.url(`${path}.issuer`, issuer);
  else if (!legacyTokens) v.fail(`${path}.issuer`, '"kubernetes/serviceaccount" (legacy secret tokens) requires legacyTokens: true and tokenReview');
  const jwksURIRaw = v.optString(item, 'jwksURI', `${path}.jwksURI`);
  if (jwksURIRaw !== undefined) v.url(`${path}.jwksURI`, jwksURIRaw);
  // Google serves its keys on another origin, and a discovered jwks_uri must be on the issuer's (oidc.ts): pinned.
  const jwksURI = jwksURIRaw ?? (item.jwksFile === undefined ? WELL_KNOWN_JWKS_URIS[issuer] : undefined);
  return {
    name,
    issuer,
    preset,
    audiences,
    jwksURI,
    jwksFile: v.optString(item, 'jwksFile', `${path}.jwksFile`),
    caFile: v.optString(item, 'caFile', `${path}.caFile`),
    bearerTokenFile: v.optString(item, 'bearerTokenFile', `${path}.bearerTokenFile`),
    tokenReview,
    legacyTokens,
    clockSkew: item.clockSkew !== undefined ? Math.round(v.duration(item.clockSkew, `${path}.clockSkew`) / 1000) : 30,
    timeout: item.timeout !== undefined ? v.duration(item.timeout, `${path}.timeout`) : 5000,
  };
}

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

class Validator {
  constructor(private readonly file: string | undefined) {}
  fail(keyPath: string, problem: string): never {
    throw new ConfigError(this.file, keyPath, problem);
  }
  obj(o: Obj, key: string): Obj {
    const x = o[key];
    if (!isObj(x)) this.fail(key, 'must be a mapping');
    return x;
  }
  optString(o: Obj, key: string, path = key): string | undefined {
    const x = o[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || x.length === 0) this.fail(path, 'must be a non-empty string');
    return x;
  }
  reqString(o: Obj, key: string, path = key): string {
    const x = this.optString(o, key, path);
    if (x === undefined) this.fail(path, 'is required');
    return x;
  }
  bool(x: unknown, path: string): boolean {
    if (typeof x !== 'boolean') this.fail(path, 'must be true or false');
    return x;
  }
  duration(x: unknown, path: string): number {
    if (typeof x !== 'string' && typeof x !== 'number') this.fail(path, 'must be a duration like 30s, 5m, 1h');
    try {
      return parseDuration(x);
    } catch (err) {
      return this.fail(path, (err as Error).message);
    }
  }
  url(path: string, s: string): string {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return this.fail(path, `"${s}" is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') this.fail(path, `"${s}" must be http or https`);
    return s;
  }
}
