import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { createHttpClient } from '../identity/http.js';
import type { IssuerConfig } from './types.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InClusterOptions {
  env?: NodeJS.ProcessEnv;
  /** The pod's service-account directory (injectable for tests). */
  serviceAccountDir?: string;
  logger: Logger;
}

/**
 * Zero-config in-cluster mode: when running in a pod with no issuer configured, trust the
 * cluster's own service-account issuer. The issuer URL comes from the API server's discovery
 * document (fetched with the pod's CA and token, since anonymous discovery is often off), and the
 * same CA and token are used for its JWKS. Returns undefined outside a pod.
 */
export async function inClusterIssuer(service: string, opts: InClusterOptions): Promise<IssuerConfig | undefined> {
  const env = opts.env ?? process.env;
  const dir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const caFile = join(dir, 'ca.crt');
  const tokenFile = join(dir, 'token');
  if (!host || !existsSync(caFile) || !existsSync(tokenFile)) return undefined;
  const apiServer = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const http = createHttpClient({ caFile, bearerTokenFile: tokenFile, bearerTokenOrigins: [apiServer], timeoutMs: 5000 });
  try {
    const res = await http.getJson(`${apiServer}/.well-known/openid-configuration`);
    const doc = res.body as { issuer?: unknown; jwks_uri?: unknown } | undefined;
    if (res.status !== 200 || typeof doc?.issuer !== 'string') {
      throw new Error(`${apiServer}/.well-known/openid-configuration answered HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (the pod token may not read discovery: bind system:service-account-issuer-discovery)' : ''}`);
    }
    const issuer: IssuerConfig = {
      name: 'cluster',
      issuer: doc.issuer,
      preset: 'kubernetes',
      audiences: [service],
      // The discovery document may name an external jwks_uri; the API server always serves its own.
      jwksURI: `${apiServer}/openid/v1/jwks`,
      caFile,
      bearerTokenFile: tokenFile,
      tokenReview: false,
      legacyTokens: false,
      clockSkew: 30,
      timeout: 5000,
      // the pod's token belongs to this API server: it may go there even though the issuer URL differs
      apiServer,
    };
    opts.logger.info({ issuer: issuer.issuer, apiServer, audiences: issuer.audiences }, 'in-cluster mode: trusting this cluster\'s service-account issuer');
    return issuer;
  } finally {
    await http.close();
  }
}

/** The pod's namespace, when running in one. */
export function podNamespace(dir = SERVICE_ACCOUNT_DIR): string | undefined {
  try {
    return readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
