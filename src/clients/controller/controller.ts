import { CoreV1Api, KubeConfig, type V1Secret, type V1ServiceAccount } from '@kubernetes/client-node';
import type { Logger } from '../../log.js';
import {
  buildSecret,
  LABEL_MANAGED,
  LABEL_OWNER,
  MANAGED_BY,
  needsRenewal,
  wantedFor,
  withPullSecret,
  type Wanted,
} from './reconcile.js';

interface ControllerOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Lifetime requested for each token, in seconds (the API server may shorten it). */
  expirationSeconds?: number;
  now?: () => number;
}

function status(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e?.code ?? e?.statusCode ?? e?.response?.statusCode;
}

/** What the reconcile steps share: the API, the logger, the clock and the token lifetime to ask for. */
interface Context {
  api: CoreV1Api;
  logger: Logger;
  now: () => number;
  expirationSeconds: number;
}

/** The Secret, or undefined when there is none (any other failure is thrown). */
async function readSecret(api: CoreV1Api, name: string, namespace: string): Promise<V1Secret | undefined> {
  try {
    return await api.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (status(err) !== 404) throw err;
    return undefined;
  }
}

/** A new token from the TokenRequest API, written into the pull secret (created, or replacing `existing`). */
async function writeFreshSecret(
  { api, logger, now, expirationSeconds }: Context,
  wanted: Wanted,
  existing: V1Secret | undefined,
): Promise<void> {
  const tr = await api.createNamespacedServiceAccountToken({
    name: wanted.serviceAccount,
    namespace: wanted.namespace,
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [wanted.audience], expirationSeconds },
    },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${wanted.namespace}/${wanted.serviceAccount} returned no token`);
  const expires = tr.status?.expirationTimestamp
    ? new Date(tr.status.expirationTimestamp)
    : new Date(now() + expirationSeconds * 1000);
  const body = buildSecret(wanted, token, new Date(now()), expires);
  if (existing) await api.replaceNamespacedSecret({ name: wanted.secretName, namespace: wanted.namespace, body });
  else await api.createNamespacedSecret({ namespace: wanted.namespace, body });
  logger.info(
    {
      namespace: wanted.namespace,
      serviceAccount: wanted.serviceAccount,
      secret: wanted.secretName,
      expires: expires.toISOString(),
    },
    existing ? 'pull secret renewed' : 'pull secret created',
  );
}

/** An opted-in account: its pull secret fresh and listed in its imagePullSecrets. */
async function ensure(ctx: Context, sa: V1ServiceAccount, wanted: Wanted): Promise<void> {
  const secret = await readSecret(ctx.api, wanted.secretName, wanted.namespace);
  if (needsRenewal(secret, wanted, ctx.now())) await writeFreshSecret(ctx, wanted, secret);
  const updated = withPullSecret(sa, wanted.secretName, true);
  if (updated) {
    await ctx.api.replaceNamespacedServiceAccount({
      name: wanted.serviceAccount,
      namespace: wanted.namespace,
      body: updated,
    });
    ctx.logger.info(
      { namespace: wanted.namespace, serviceAccount: wanted.serviceAccount },
      'added pull secret to imagePullSecrets',
    );
  }
}

/** Managed Secrets no account wants any more: unlisted from their owner, then deleted. */
async function cleanup(
  { api, logger }: Context,
  managed: V1Secret[],
  wantedKeys: Set<string>,
  accounts: Map<string, V1ServiceAccount>,
): Promise<void> {
  for (const s of managed) {
    const ns = s.metadata?.namespace ?? '';
    const name = s.metadata?.name ?? '';
    if (wantedKeys.has(`${ns}/${name}`)) continue;
    const owner = s.metadata?.labels?.[LABEL_OWNER];
    const sa = owner ? accounts.get(`${ns}/${owner}`) : undefined;
    const updated = sa ? withPullSecret(sa, name, false) : undefined;
    if (updated) await api.replaceNamespacedServiceAccount({ name: owner!, namespace: ns, body: updated });
    try {
      await api.deleteNamespacedSecret({ name, namespace: ns });
    } catch (err) {
      if (status(err) !== 404) throw err;
    }
    logger.info({ namespace: ns, secret: name }, 'opt-in removed: pull secret deleted');
  }
}

/**
 * Keeps one `kubernetes.io/dockerconfigjson` Secret per opted-in service account fresh (a token from
 * the TokenRequest API, renewed at 80% of its life) and listed in its imagePullSecrets; removes both
 * when the annotation goes.
 */
export function createController(opts: ControllerOptions) {
  const ctx: Context = {
    api: opts.kubeConfig.makeApiClient(CoreV1Api),
    logger: opts.logger,
    now: opts.now ?? Date.now,
    expirationSeconds: opts.expirationSeconds ?? 3600,
  };
  const { api } = ctx;

  /** One pass over every service account and managed Secret. Errors of one account do not stop the others. */
  async function reconcileOnce(): Promise<{ errors: number }> {
    const accounts = (await api.listServiceAccountForAllNamespaces({})).items;
    const byKey = new Map(accounts.map((sa) => [`${sa.metadata?.namespace}/${sa.metadata?.name}`, sa]));
    const wantedKeys = new Set<string>();
    let errors = 0;
    for (const sa of accounts) {
      const wanted = wantedFor(sa);
      if (!wanted) continue;
      wantedKeys.add(`${wanted.namespace}/${wanted.secretName}`);
      try {
        await ensure(ctx, sa, wanted);
      } catch (err) {
        errors++;
        opts.logger.error(
          { namespace: wanted.namespace, serviceAccount: wanted.serviceAccount, err: (err as Error).message },
          'reconcile failed',
        );
      }
    }
    const managed = (await api.listSecretForAllNamespaces({ labelSelector: `${LABEL_MANAGED}=${MANAGED_BY}` })).items;
    try {
      await cleanup(ctx, managed, wantedKeys, byKey);
    } catch (err) {
      errors++;
      opts.logger.error({ err: (err as Error).message }, 'cleanup failed');
    }
    return { errors };
  }

  return { reconcileOnce };
}
