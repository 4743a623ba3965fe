import { inClusterIssuerConfig, podServiceAccount } from '../config/in-cluster.js';
import type { IssuerConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { createHttpClient } from './http.js';

interface InClusterOptions {
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
  const pod = podServiceAccount(opts.env ?? process.env, opts.serviceAccountDir);
  if (!pod) return undefined;
  const { apiServer } = pod;
  const http = createHttpClient({
    caFile: pod.caFile,
    bearerTokenFile: pod.tokenFile,
    bearerTokenOrigins: [apiServer],
    timeoutMs: 5000,
  });
  try {
    const res = await http.getJson(`${apiServer}/.well-known/openid-configuration`);
    const doc = res.body as { issuer?: unknown } | undefined;
    if (res.status !== 200 || typeof doc?.issuer !== 'string') {
      const hint =
        res.status === 401 || res.status === 403
          ? ' (the pod token may not read discovery: bind system:service-account-issuer-discovery)'
          : '';
      throw new Error(`${apiServer}/.well-known/openid-configuration answered HTTP ${res.status}${hint}`);
    }
    const issuer = inClusterIssuerConfig(pod, doc.issuer, service);
    opts.logger.info(
      { issuer: issuer.issuer, apiServer, audiences: issuer.audiences },
      "in-cluster mode: trusting this cluster's service-account issuer",
    );
    return issuer;
  } finally {
    await http.close();
  }
}
