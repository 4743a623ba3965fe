import { readFileSync, existsSync } from 'node:fs';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DEFAULT_CLOCK_SKEW, parseDuration } from '../config/duration.js';

/**
 * Where workloads find their identity token when RAP_TOKEN_FILE is unset: a projected token with
 * the registry's audience. The pod's automounted `/var/run/secrets/kubernetes.io/serviceaccount/token`
 * is deliberately NOT a fallback (CONTRACT §1 listed it): its audience is the Kubernetes API, so
 * handing it to a registry hands over the pod's API-server credential.
 */
export const DEFAULT_TOKEN_FILES = ['/var/run/secrets/tokens/registry-token'];

/** The automounted API-server token; named in errors so users know why it is not used. */
const API_SERVER_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export class TokenSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenSourceError';
  }
}

/** Hosts that only ever name a Kubernetes API server: in-cluster names, AKS and GKE API servers. */
function isKubernetesAPIHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return (
    h === 'kubernetes' ||
    h === 'kubernetes.default' ||
    h === 'kubernetes.default.svc' ||
    h.startsWith('kubernetes.default.svc.') ||
    h.endsWith('.azmk8s.io') ||
    h === 'container.googleapis.com'
  );
}

function hostOf(audience: string): string {
  const a = audience.replace(/^"|"$/g, '');
  try {
    return new URL(a.includes('://') ? a : `https://${a}`).hostname;
  } catch {
    return a;
  }
}

/**
 * Why this token must not be handed to a registry because it is a Kubernetes API-server credential,
 * or undefined. Pure; decodes the payload without verifying (we only decide what *not* to send):
 * - legacy secret-based service-account tokens (`iss: kubernetes/serviceaccount`, no audience) are
 *   accepted by the API server forever;
 * - an `aud` naming the in-cluster API server (`https://kubernetes.default.svc[.cluster.local]`:
 *   EKS, OpenShift, kubeadm, k3s), an AKS API server (`*.azmk8s.io`) or a GKE cluster;
 * - a service-account token (it carries `kubernetes.io`) whose `aud` is its own `iss`: the API
 *   server's default audience when `--api-audiences` is unset (kubeadm, GKE).
 * Anything not decodable as a JWT is not a Kubernetes token and is left alone.
 */
export function kubernetesAPIAudience(token: string): string | undefined {
  let claims: Record<string, unknown>;
  try {
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (claims.iss === 'kubernetes/serviceaccount')
    return 'it is a legacy service-account token (iss "kubernetes/serviceaccount"), valid for the Kubernetes API server';
  const auds =
    typeof claims.aud === 'string'
      ? [claims.aud]
      : Array.isArray(claims.aud)
        ? claims.aud.filter((a): a is string => typeof a === 'string')
        : [];
  const api = auds.find((a) => isKubernetesAPIHost(hostOf(a)));
  if (api !== undefined) return `its audience ${JSON.stringify(api)} is the Kubernetes API server`;
  if (claims['kubernetes.io'] !== undefined && typeof claims.iss === 'string' && auds.includes(claims.iss)) {
    return `its audience ${JSON.stringify(claims.iss)} is its own issuer, the Kubernetes API server's default audience`;
  }
  return undefined;
}

/** Throws unless the token may leave for a registry (see kubernetesAPIAudience). */
export function assertNotKubernetesAPIToken(token: string, source: string): void {
  const why = kubernetesAPIAudience(token);
  if (why) {
    throw new TokenSourceError(
      `refusing to hand out the token from ${source}: ${why}; that would give the registry the workload's Kubernetes API credential. ` +
        "Use a projected service-account token with the registry's audience (serviceAccountToken: {audience: <registry service>, path: registry-token}) and point RAP_TOKEN_FILE at it",
    );
  }
}

/** How long after `exp` a token still counts as fresh: the proxy's default issuer clockSkew. */
const LEEWAY_SECONDS = parseDuration(DEFAULT_CLOCK_SKEW) / 1000;

type TokenFreshness =
  { state: 'ok'; exp?: number } | { state: 'expired'; exp: number } | { state: 'not-jwt'; why: string };

/**
 * Whether a token is still worth sending: a JWT (header.payload.signature, JSON header and payload)
 * whose `exp`, if it has one, has not passed by more than the leeway the proxy's /token allows.
 * Pure; decodes without verifying (the proxy verifies). A token without `exp` is left to the proxy.
 */
export function tokenFreshness(token: string, nowSeconds: number, leewaySeconds = LEEWAY_SECONDS): TokenFreshness {
  let exp: unknown;
  try {
    if (token.split('.').length !== 3) throw new Error('not three dot-separated parts');
    decodeProtectedHeader(token);
    exp = decodeJwt(token).exp;
  } catch (err) {
    return { state: 'not-jwt', why: (err as Error).message };
  }
  if (exp === undefined) return { state: 'ok' };
  if (typeof exp !== 'number' || !Number.isFinite(exp))
    return { state: 'not-jwt', why: `its exp is not a number (${JSON.stringify(exp)})` };
  return exp + leewaySeconds < nowSeconds ? { state: 'expired', exp } : { state: 'ok', exp };
}

/** "3h 5m", "42s": how long, for people. Pure. */
export function formatSpan(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : ''].filter(Boolean).join(' ') || '0m';
}

/** What to tell someone whose token `from` (e.g. "identity token file /x") ran out at `exp`. Pure. */
export function expiredMessage(from: string, exp: number, nowSeconds: number): string {
  const when = new Date(exp * 1000).toISOString();
  const at =
    exp <= nowSeconds
      ? `expired at ${when} (${formatSpan(nowSeconds - exp)} ago)`
      : `expires at ${when}, in ${formatSpan(exp - nowSeconds)}`;
  return `${from} ${at}: whatever writes it has stopped refreshing it (the kubelet rewrites a projected token well before exp; in CI, request a new OIDC token) — put a fresh token there`;
}

/** Throws, naming `from`, unless the token is a JWT that has not expired (see tokenFreshness). */
function assertFreshToken(token: string, from: string, nowSeconds: number): void {
  const f = tokenFreshness(token, nowSeconds);
  if (f.state === 'expired') throw new TokenSourceError(expiredMessage(from, f.exp, nowSeconds));
  if (f.state === 'not-jwt')
    throw new TokenSourceError(
      `${from} does not hold a JWT (${f.why}): registry-auth-proxy takes an identity token (header.payload.signature) and would refuse it`,
    );
}

/**
 * Reads the identity token afresh on every call (projected tokens rotate under us): the file named
 * by RAP_TOKEN_FILE, else the first default that exists. Kubernetes API-server tokens are refused,
 * and so are an expired token and one that is not a JWT: the proxy would refuse them anyway, and
 * Docker 28 turns a refused login into a bare "authentication required", so say it here, naming the file.
 */
export function readIdentityToken(
  env: NodeJS.ProcessEnv = process.env,
  now: () => number = Date.now,
): { token: string; file: string } {
  const candidates = env.RAP_TOKEN_FILE ? [env.RAP_TOKEN_FILE] : DEFAULT_TOKEN_FILES;
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new TokenSourceError(`cannot read identity token file ${file}: ${(err as Error).message}`);
    }
    if (!token) throw new TokenSourceError(`identity token file ${file} is empty`);
    assertNotKubernetesAPIToken(token, file);
    assertFreshToken(token, `identity token file ${file}`, Math.floor(now() / 1000));
    return { token, file };
  }
  const hint = env.RAP_TOKEN_FILE
    ? 'set RAP_TOKEN_FILE to an existing file'
    : `set RAP_TOKEN_FILE; ${API_SERVER_TOKEN_FILE} is never used: it is the pod's Kubernetes API credential`;
  throw new TokenSourceError(`no identity token file found (looked at ${candidates.join(', ')}; ${hint})`);
}

/** The token's `exp` in epoch seconds, decoded without verification (for cache durations only). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The username clients send with an identity token: never empty (containerd would switch to refresh_token), never `<token>`. */
export const DEFAULT_USERNAME = 'registry-auth-proxy';
