/** The validated, typed configuration. Produced once by `config/load.ts`; everything else reads only this. */

export type Preset = 'kubernetes' | 'github-actions' | 'gitlab' | 'google';
export const PRESETS: readonly Preset[] = ['kubernetes', 'github-actions', 'gitlab', 'google'];

export type SigningAlgorithm = 'ES256' | 'RS256' | 'EdDSA';
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = ['ES256', 'RS256', 'EdDSA'];

export interface TokenReviewConfig {
  /** API server base URL; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  url?: string;
  caFile?: string;
  bearerTokenFile?: string;
  /** How long a TokenReview answer is reused, in ms. */
  cacheTTL: number;
}

export interface IssuerConfig {
  name: string;
  /** Must equal the token's `iss` exactly. */
  issuer: string;
  preset?: Preset;
  /** The token's `aud` must contain one of these. Never empty after load. */
  audiences: string[];
  jwksURI?: string;
  jwksFile?: string;
  caFile?: string;
  bearerTokenFile?: string;
  tokenReview: TokenReviewConfig | false;
  legacyTokens: boolean;
  /** Allowed clock skew, in seconds. */
  clockSkew: number;
  /** Deadline of each call to the issuer (discovery, JWKS, TokenReview), in ms. */
  timeout: number;
  /**
   * Not a config key: the Kubernetes API server URL that in-cluster mode found. Its origin may
   * receive `bearerTokenFile` (besides the issuer's own origin and the TokenReview URL's).
   */
  apiServer?: string;
}

export type UpstreamAuth =
  | { type: 'none' }
  | { type: 'basic'; username: string; passwordFile: string }
  | { type: 'bearer'; tokenFile: string }
  | { type: 'registry-token'; username: string; passwordFile: string };

export interface UpstreamConfig {
  url: string;
  caFile?: string;
  auth: UpstreamAuth;
  /** Timeout for connecting to and hearing headers from the upstream, in ms. */
  timeout: number;
}

export interface TokensConfig {
  /** A PEM file, or a directory of PEM files (current + next keys for rotation). */
  signingKeyFile?: string;
  certificateFile?: string;
  algorithm: SigningAlgorithm;
  /** Lifetime of issued tokens, in seconds. */
  ttl: number;
  /** Longest life of a refresh token, in seconds (it never outlives the identity token either); 0: none issued; absent: 12h. */
  refreshTTL?: number;
}

/** A token bucket: `rate` requests per second on average, bursts of up to `burst`. `rate: 0` disables it. */
export interface RateLimit {
  rate: number;
  burst: number;
}

export interface LimitsConfig {
  /** `/token` requests per client IP (the TCP peer: behind an ingress, raise or disable this). */
  tokenPerClient: RateLimit;
  /** `/token` requests of all clients together: protects the issuer and the CPU. */
  tokenGlobal: RateLimit;
  /** Largest request head (request line + headers) accepted, in bytes; larger gets 431. */
  maxHeaderBytes: number;
  /** Most header lines in one request; more gets 431 (never truncated: framing headers could hide behind them). */
  maxHeaderCount: number;
  /** Deadline for a request body the proxy reads itself (the `/token` form), in ms; then 408. */
  tokenBodyTimeout: number;
  /** A client connection with no bytes moving either way for this long is closed, in ms; 0 = never. */
  idleTimeout: number;
  /** Client connections open at once, all clients together; 0 = unlimited. */
  maxConnections: number;
  /** Client connections open at once per TCP peer address (trustedProxies exempt); 0 = unlimited. */
  maxConnectionsPerClient: number;
}

export interface Config {
  /** Path of the YAML file the config came from, if any (for error messages). */
  file?: string;
  listen: { host: string; port: number };
  publicURL: string;
  /** True when publicURL was not configured but derived from `listen` (serve refuses that on non-loopback addresses). */
  publicURLDerived?: boolean;
  service: string;
  tls?: { certFile: string; keyFile: string };
  upstream?: UpstreamConfig;
  issuers: IssuerConfig[];
  tokens: TokensConfig;
  policies: string;
  anonymous: boolean;
  /** Refusals at /v2/ name the identity, the refused actions and the rule (default); false: Distribution's generic message. */
  explainDenials: boolean;
  limits: LimitsConfig;
  /** Addresses/CIDRs of proxies in front of us whose X-Forwarded-For is believed (for the client IP). */
  trustedProxies: string[];
  /** On SIGTERM: how long in-flight requests may take to finish before connections are cut, in ms. */
  shutdownGrace: number;
  logLevel: string;
  dev: boolean;
}
