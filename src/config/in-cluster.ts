import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { issuerConfig } from './issuer-schema.js';
import type { IssuerConfig } from './types.js';

/**
 * Zero-config in-cluster mode, the configuration half: where a pod's service-account files are,
 * and the issuer entry built from what discovery found. The discovery itself (HTTP to the API
 * server) is identity/in-cluster.ts, so config/ never talks to the network.
 */

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The pod's API server and the CA and token to reach it with. */
interface PodServiceAccount {
  apiServer: string;
  caFile: string;
  tokenFile: string;
}

/** The pod's service account, or undefined outside a pod (no API server address or no token). */
export function podServiceAccount(
  env: NodeJS.ProcessEnv = process.env,
  dir = SERVICE_ACCOUNT_DIR,
): PodServiceAccount | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const caFile = join(dir, 'ca.crt');
  const tokenFile = join(dir, 'token');
  if (!host || !existsSync(caFile) || !existsSync(tokenFile)) return undefined;
  return { apiServer: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, caFile, tokenFile };
}

/** The cluster's service-account issuer `issuer` (as discovered), trusted with the pod's CA and token. */
export function inClusterIssuerConfig(pod: PodServiceAccount, issuer: string, service: string): IssuerConfig {
  return issuerConfig(
    {
      name: 'cluster',
      issuer,
      preset: 'kubernetes',
      audiences: [service],
      // The discovery document may name an external jwks_uri; the API server always serves its own.
      jwksURI: `${pod.apiServer}/openid/v1/jwks`,
      caFile: pod.caFile,
      bearerTokenFile: pod.tokenFile,
    },
    { keyPath: 'issuers' },
    // the pod's token belongs to this API server: it may go there even though the issuer URL differs
    { apiServer: pod.apiServer },
  );
}
