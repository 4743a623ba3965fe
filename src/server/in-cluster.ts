import { extendConfig, missingIssuerProblem } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import type { Config, IssuerConfig } from '../config/types.js';
import { inClusterIssuer } from '../identity/in-cluster.js';
import type { Logger } from '../log.js';

/**
 * Zero-config in-cluster mode, decided once: by the single process, or by the primary of
 * `workers: N`, which hands the issuer to its workers with their init message (no discovery per
 * worker). The runtime takes the config as decided.
 */

/** Where to look for the pod's service account (tests inject them). */
export interface PodOptions {
  env?: NodeJS.ProcessEnv;
  serviceAccountDir?: string;
}

/** With no issuer configured and running in a pod: the cluster's own issuer (asked of its API server); else undefined. */
export async function clusterIssuerFor(
  config: Config,
  logger: Logger,
  pod: PodOptions = {},
): Promise<IssuerConfig | undefined> {
  if (config.issuers.length > 0) return undefined;
  return inClusterIssuer(config.service, { logger, env: pod.env, serviceAccountDir: pod.serviceAccountDir });
}

/** `config` with the cluster's issuer when there is one (the Config is frozen: a new one). Pure. */
export function withClusterIssuer(config: Config, issuer: IssuerConfig | undefined): Config {
  return issuer ? extendConfig(config, { issuers: [issuer] }) : config;
}

/**
 * Throws when, the cluster's issuer having had its chance, nothing could ever be accepted: refuse
 * to start rather than listen, say ready and refuse everyone.
 */
export function requireSomeIssuer(config: Config): void {
  const problem = missingIssuerProblem(config);
  if (problem) throw new ConfigError(config.file, 'issuers', problem);
}
