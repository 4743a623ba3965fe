import type { IssuerConfig } from '../config/types.js';

/**
 * What the primary (cluster.ts) and its workers (cluster-worker.ts) say to each other: the messages
 * of the cluster's IPC channel both ways, and the env variable that gives a forked worker its slot.
 */

/**
 * Primary → worker, over the cluster's IPC channel (the signing key never goes through env, argv or
 * files). `rap:init` carries what the primary decided once for all: the ephemeral key and the
 * in-cluster issuer.
 */
export type ToWorker =
  | { type: 'rap:init'; sharedEphemeralPem?: string; clusterIssuer?: IssuerConfig }
  | { type: 'rap:drain' }
  | { type: 'rap:collect'; id: number }
  | { type: 'rap:metrics'; id: number; text: string };

/** Worker → primary. */
export type FromWorker =
  | { type: 'rap:hello' }
  | { type: 'rap:ready' }
  | { type: 'rap:metrics'; id: number }
  | { type: 'rap:collected'; id: number; metrics: object[] };

/** The env variable that tells a forked worker its slot (1…N); a slot keeps its number across restarts. */
export const WORKER_SLOT_ENV = 'RAP_WORKER_SLOT';
