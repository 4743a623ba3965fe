import type { V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { dockerConfigSecret } from '../login.js';
import { DEFAULT_USERNAME } from '../token-source.js';

/**
 * The pull-secret controller's decisions, as pure functions: which Secret a service account
 * should have, whether it is due for renewal, what to remove.
 */
const ANNOTATION_REGISTRY = 'registry-auth-proxy.io/registry';
const ANNOTATION_AUDIENCE = 'registry-auth-proxy.io/audience';
const ANNOTATION_ISSUED = 'registry-auth-proxy.io/issued-at';
const ANNOTATION_EXPIRES = 'registry-auth-proxy.io/expires-at';
export const LABEL_MANAGED = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'registry-auth-proxy';
export const LABEL_OWNER = 'registry-auth-proxy.io/service-account';

function secretNameFor(sa: string): string {
  return `${sa}-registry-auth-proxy`.slice(0, 253);
}

export interface Wanted {
  namespace: string;
  serviceAccount: string;
  registry: string;
  audience: string;
  secretName: string;
}

export function wantedFor(sa: V1ServiceAccount): Wanted | undefined {
  const registry = sa.metadata?.annotations?.[ANNOTATION_REGISTRY]?.trim();
  if (!registry || !sa.metadata?.name || !sa.metadata.namespace) return undefined;
  return {
    namespace: sa.metadata.namespace,
    serviceAccount: sa.metadata.name,
    registry,
    audience: sa.metadata.annotations?.[ANNOTATION_AUDIENCE]?.trim() || registry.replace(/:\d+$/, ''),
    secretName: secretNameFor(sa.metadata.name),
  };
}

/** Renew at 80% of the token's lifetime (as kubelet does for projected tokens). */
export function needsRenewal(secret: V1Secret | undefined, wanted: Wanted, nowMs: number): boolean {
  if (!secret) return true;
  const a = secret.metadata?.annotations ?? {};
  const issued = Date.parse(a[ANNOTATION_ISSUED] ?? '');
  const expires = Date.parse(a[ANNOTATION_EXPIRES] ?? '');
  if (!Number.isFinite(issued) || !Number.isFinite(expires)) return true;
  if (a[ANNOTATION_REGISTRY] !== wanted.registry || a[ANNOTATION_AUDIENCE] !== wanted.audience) return true;
  return nowMs >= issued + 0.8 * (expires - issued);
}

export function buildSecret(wanted: Wanted, token: string, issuedAt: Date, expiresAt: Date): V1Secret {
  const base = dockerConfigSecret(wanted.secretName, wanted.namespace, wanted.registry, DEFAULT_USERNAME, token, {
    [LABEL_MANAGED]: MANAGED_BY,
    [LABEL_OWNER]: wanted.serviceAccount,
  });
  return {
    ...base,
    metadata: {
      ...base.metadata,
      annotations: {
        [ANNOTATION_REGISTRY]: wanted.registry,
        [ANNOTATION_AUDIENCE]: wanted.audience,
        [ANNOTATION_ISSUED]: issuedAt.toISOString(),
        [ANNOTATION_EXPIRES]: expiresAt.toISOString(),
      },
    },
  } as V1Secret;
}

/** The service account with `secretName` added to (or removed from) its imagePullSecrets, or undefined when unchanged. */
export function withPullSecret(
  sa: V1ServiceAccount,
  secretName: string,
  present: boolean,
): V1ServiceAccount | undefined {
  const list = sa.imagePullSecrets ?? [];
  const has = list.some((r) => r.name === secretName);
  if (has === present) return undefined;
  return {
    ...sa,
    imagePullSecrets: present ? [...list, { name: secretName }] : list.filter((r) => r.name !== secretName),
  };
}
