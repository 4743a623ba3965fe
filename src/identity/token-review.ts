import { existsSync } from 'node:fs';
import type { TokenReviewConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import { createHttpClient, type HttpClient } from './http.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface TokenReviewResult {
  authenticated: boolean;
  username?: string;
  uid?: string;
  groups?: string[];
  audiences?: string[];
  error?: string;
}

export interface TokenReviewer {
  /** Asks the API server; throws when it cannot be asked (callers fail closed). */
  review(token: string, audiences: string[] | undefined): Promise<TokenReviewResult>;
  close(): Promise<void>;
}

/** Resolves the API server URL and credentials: explicit config, else the pod's own. */
export function tokenReviewTarget(
  cfg: TokenReviewConfig,
  env: NodeJS.ProcessEnv = process.env,
): { url: string; caFile?: string; bearerTokenFile?: string } {
  let url = cfg.url;
  if (!url) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) throw new Error('tokenReview: no url configured and KUBERNETES_SERVICE_HOST is not set');
    url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  const caFile = cfg.caFile ?? (existsSync(`${SA_DIR}/ca.crt`) ? `${SA_DIR}/ca.crt` : undefined);
  const bearerTokenFile = cfg.bearerTokenFile ?? (existsSync(`${SA_DIR}/token`) ? `${SA_DIR}/token` : undefined);
  return { url: url.replace(/\/+$/, ''), caFile, bearerTokenFile };
}

/** `POST /apis/authentication.k8s.io/v1/tokenreviews`; the caller needs `system:auth-delegator`. */
export function createTokenReviewer(
  cfg: TokenReviewConfig,
  logger: Logger,
  http?: HttpClient,
  timeoutMs = 5000,
): TokenReviewer {
  const target = tokenReviewTarget(cfg);
  const client =
    http ??
    createHttpClient({
      caFile: target.caFile,
      bearerTokenFile: target.bearerTokenFile,
      bearerTokenOrigins: [target.url],
      timeoutMs,
    });
  return {
    async review(token, audiences) {
      const res = await client.postJson(`${target.url}/apis/authentication.k8s.io/v1/tokenreviews`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences ? { audiences } : {}) },
      });
      if (res.status !== 200 && res.status !== 201) {
        const msg = (res.body as { message?: string } | undefined)?.message;
        logger.error({ status: res.status, apiMessage: msg }, 'TokenReview request refused by the API server');
        throw new Error(`TokenReview: HTTP ${res.status}${msg ? ` (${msg})` : ''}`);
      }
      const status = ((res.body as { status?: Record<string, unknown> } | undefined)?.status ?? {}) as Record<
        string,
        unknown
      >;
      const user = (status.user ?? {}) as Record<string, unknown>;
      return {
        authenticated: status.authenticated === true,
        username: typeof user.username === 'string' ? user.username : undefined,
        uid: typeof user.uid === 'string' ? user.uid : undefined,
        groups: Array.isArray(user.groups) ? (user.groups as string[]) : undefined,
        audiences: Array.isArray(status.audiences) ? (status.audiences as string[]) : undefined,
        error: typeof status.error === 'string' ? status.error : undefined,
      };
    },
    close: () => client.close(),
  };
}
