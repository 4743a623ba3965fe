import type { Preset } from '../config/types.js';
import type { Identity } from './types.js';

/** The configured issuer a token was verified against. */
interface IssuerRef {
  issuerName: string;
  issuer: string;
  preset?: Preset;
}

function str(x: unknown): string | undefined {
  return typeof x === 'string' && x.length > 0 ? x : undefined;
}

function obj(x: unknown): Record<string, unknown> | undefined {
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;
}

/** Maps verified claims to the `identity` policies see. Pure; also used by `policy test`. */
export function identityFromClaims(claims: Record<string, unknown>, source: IssuerRef): Identity {
  const identity: Identity = {
    issuerName: source.issuerName,
    issuer: source.issuer,
    subject: str(claims.sub) ?? '',
    preset: source.preset,
    claims,
    expiresAt: typeof claims.exp === 'number' ? claims.exp : undefined,
  };
  if (source.preset === 'kubernetes') Object.assign(identity, kubernetesFields(claims));
  return identity;
}

/**
 * Both Kubernetes token shapes: bound (projected) tokens nest `kubernetes.io: {namespace, pod,
 * serviceaccount}`; legacy secret tokens carry flat `kubernetes.io/serviceaccount/*` claims.
 */
function kubernetesFields(claims: Record<string, unknown>): Pick<Identity, 'namespace' | 'serviceAccount' | 'podName'> {
  const bound = obj(claims['kubernetes.io']);
  if (bound) {
    return {
      namespace: str(bound.namespace),
      serviceAccount: str(obj(bound.serviceaccount)?.name),
      podName: str(obj(bound.pod)?.name),
    };
  }
  const legacyNs = str(claims['kubernetes.io/serviceaccount/namespace']);
  if (legacyNs !== undefined) {
    return {
      namespace: legacyNs,
      serviceAccount: str(claims['kubernetes.io/serviceaccount/service-account.name']),
      podName: undefined,
    };
  }
  // Fall back to the subject `system:serviceaccount:<ns>:<sa>`.
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(str(claims.sub) ?? '');
  return m ? { namespace: m[1], serviceAccount: m[2], podName: undefined } : {};
}
