import type { z } from 'zod';
import type { AuditConfig } from './audit-schema.js';
import type { IssuerConfig } from './issuer-schema.js';
import type { ListenAddress } from './net.js';
import { signingAlgorithm, type ConfigFile } from './schema.js';
import type { SignatureEntry, SignatureLookup } from './trust-schema.js';
import type { TracingConfig } from './tracing-schema.js';
import type { upstreamSchema } from './upstream-schema.js';

/**
 * The validated, typed configuration, produced once by `config/load.ts` and frozen: everything
 * else reads only this. The types come from the schemas (schema.ts, issuer-schema.ts); only what
 * the file does not hold (resolved defaults, flags, the mode) is written here.
 */

export { PRESETS, type Preset } from './presets.js';
export type { AuditConfig, IssuerConfig, SignatureEntry, SignatureLookup, TracingConfig };

export type SigningAlgorithm = z.output<typeof signingAlgorithm>;
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = signingAlgorithm.options;

export type TokenReviewConfig = Exclude<IssuerConfig['tokenReview'], false>;

export type UpstreamConfig = Readonly<Omit<z.output<typeof upstreamSchema>, 'url'> & { url: string }>;

/** One of `upstreams`: its name (request.upstream; '' for a lone `upstream:`) and repository-name prefix ('' for the default). */
export type NamedUpstream = UpstreamConfig & Readonly<{ name: string; prefix: string }>;

export type TokensConfig = Readonly<ConfigFile['tokens']>;

export type RateLimit = Readonly<ConfigFile['limits']['tokenPerClient']>;

/** One of `limits.rules`. */
export type LimitRule = Readonly<ConfigFile['limits']['rules'][number]>;
export type LimitStoreConfig = Readonly<ConfigFile['limits']['store']>;

export type LimitsConfig = Readonly<
  Omit<ConfigFile['limits'], 'idleTimeout'> & {
    /** A client connection with no bytes moving either way for this long is closed, in ms; 0 = never. */
    idleTimeout: number;
  }
>;

export type Config = Readonly<{
  /** Path of the YAML file the config came from, if any (for error messages). */
  file?: string;
  listen: Readonly<ListenAddress>;
  publicURL: string;
  /** True when publicURL was not configured but derived from `listen` (serve refuses that on non-loopback addresses). */
  publicURLDerived?: boolean;
  service: string;
  tls?: Readonly<{ certFile: string; keyFile: string }>;
  /**
   * Every upstream, the default one (prefix '') included: `upstreams:`, with `upstream:` (or
   * `--upstream`) turned into an entry by config/upstreams.ts resolveUpstreams. Empty: none configured.
   */
  upstreams: readonly NamedUpstream[];
  issuers: readonly IssuerConfig[];
  tokens: TokensConfig;
  policies: string;
  anonymous: boolean;
  explainDenials: boolean;
  limits: LimitsConfig;
  /** `signatures:` entries (trust/ reads the files they name at start-up); absent or empty: no signature is required. */
  signatures?: readonly Readonly<SignatureEntry>[];
  /** Verdict cache and lookup deadline of the signature checks, in ms. */
  signatureLookup: Readonly<SignatureLookup>;
  /** Audit sinks and the claims events carry (audit/). */
  audit: Readonly<AuditConfig>;
  /** OpenTelemetry export (tracing/); absent: off, the SDK not even loaded. */
  tracing?: Readonly<TracingConfig>;
  trustedProxies: readonly string[];
  /** On SIGTERM: how long in-flight requests may take to finish before connections are cut, in ms. */
  shutdownGrace: number;
  /** Processes serving requests (node:cluster when more than 1); `auto`: server/cpus.ts decides. */
  workers: number | 'auto';
  logLevel: string;
  dev: boolean;
}>;
