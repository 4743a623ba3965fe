import { readFileSync, existsSync } from 'node:fs';
import { decodeJwt } from 'jose';

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

/**
 * Reads the identity token afresh on every call (projected tokens rotate under us): the file named
 * by RAP_TOKEN_FILE, else the first default that exists. Kubernetes API-server tokens are refused.
 */
export function readIdentityToken(env: NodeJS.ProcessEnv = process.env): { token: string; file: string } {
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
