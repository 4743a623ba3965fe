import cluster from 'node:cluster';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { IssuerConfig } from '../config/types.js';
import type { FromWorker, ToWorker } from './cluster-protocol.js';
import type { Runtime } from './runtime.js';

/**
 * A worker's side of `workers: N` (the primary is cluster.ts): it gets the shared ephemeral key
 * before starting, answers the primary's metric collections, asks the primary for the sum of all
 * workers when scraped, and drains on the primary's word.
 */

/** How long a scrape waits for the primary's sum before answering with this worker's own metrics. */
const METRICS_TIMEOUT_MS = 5_000;
/** How long a new worker waits for the primary's init message. */
const INIT_TIMEOUT_MS = 10_000;

export interface WorkerLink {
  /** 1…N; a restarted worker keeps its slot's number. */
  slot: number;
  sharedEphemeralPem?: string;
  /** In-cluster mode: the cluster's issuer, as the primary found it. */
  clusterIssuer?: IssuerConfig;
  /** /metrics of all workers together (this worker's own if the primary does not answer). */
  metricsText(): Promise<string>;
  /** Once listening: per-worker metrics, and `drain` on the primary's word. */
  serve(runtime: Runtime, drain: () => void): void;
  /** Once stopped, or failed to start: closes the channel to the primary, which would hold the process. */
  leave(): void;
}

function send(message: FromWorker): void {
  // A callback keeps a send on a closing channel from becoming an 'error' event.
  if (process.connected) process.send!(message, undefined, undefined, () => undefined);
}

/** Says hello to the primary and resolves once it answered with the init message. */
export function joinPrimary(slot: number): Promise<WorkerLink> {
  const channel = new PrimaryChannel(slot);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.leave();
      reject(new Error('worker: no init message from the primary'));
    }, INIT_TIMEOUT_MS);
    channel.onInit = (init) => {
      clearTimeout(timer);
      resolve({
        slot,
        sharedEphemeralPem: init.sharedEphemeralPem,
        clusterIssuer: init.clusterIssuer,
        metricsText: () => channel.metricsText(),
        serve: (runtime, drain) => channel.serve(runtime, drain),
        leave: () => channel.leave(),
      });
    };
    process.on('message', (message: ToWorker) => channel.onMessage(message));
    send({ type: 'rap:hello' });
  });
}

class PrimaryChannel {
  onInit?: (init: Extract<ToWorker, { type: 'rap:init' }>) => void;
  private registry?: Registry;
  private drain?: () => void;
  private drainAsked = false;
  private nextId = 0;
  private readonly scrapes = new Map<number, (text: string) => void>();

  constructor(private readonly slot: number) {}

  onMessage(message: ToWorker): void {
    if (message.type === 'rap:init') this.onInit?.(message);
    else if (message.type === 'rap:metrics') this.scrapes.get(message.id)?.(message.text);
    else if (message.type === 'rap:drain') this.drainNow();
    else if (message.type === 'rap:collect')
      void (this.registry?.getMetricsAsJSON() ?? Promise.resolve([])).then((metrics) =>
        send({ type: 'rap:collected', id: message.id, metrics }),
      );
  }

  /**
   * Closes the channel (cluster's own messages need it until the listener is up, so not sooner).
   * Through cluster's disconnect: a bare process.disconnect() makes node:cluster exit 0 at once,
   * as it does in every worker when the primary is gone.
   */
  leave(): void {
    if (process.connected) cluster.worker?.disconnect();
  }

  serve(runtime: Runtime, drain: () => void): void {
    this.registry = runtime.metrics.registry;
    workerMetrics(runtime, this.slot);
    this.drain = drain;
    if (this.drainAsked) drain();
    send({ type: 'rap:ready' });
  }

  metricsText(): Promise<string> {
    const own = () => this.registry?.metrics() ?? Promise.resolve('');
    if (!process.connected) return own();
    const id = this.nextId++;
    return new Promise<string>((done) => {
      const fallback = setTimeout(() => {
        this.scrapes.delete(id);
        void own().then(done);
      }, METRICS_TIMEOUT_MS);
      this.scrapes.set(id, (text) => {
        clearTimeout(fallback);
        this.scrapes.delete(id);
        done(text);
      });
      send({ type: 'rap:metrics', id });
    });
  }

  private drainNow(): void {
    this.drainAsked = true;
    this.drain?.();
  }
}

/** `rap_worker_info{worker, pid}` and the connections this worker was handed: both stay per worker in the sum. */
function workerMetrics(runtime: Runtime, slot: number): void {
  const registry = runtime.metrics.registry;
  const worker = String(slot);
  new Gauge({
    name: 'rap_worker_info',
    help: 'One series per worker process (workers > 1): its slot and pid',
    labelNames: ['worker', 'pid'],
    registers: [registry],
  })
    .labels(worker, String(process.pid))
    .set(1);
  const connections = new Counter({
    name: 'rap_worker_connections_total',
    help: 'Client connections handed to each worker (workers > 1)',
    labelNames: ['worker'],
    registers: [registry],
  }).labels(worker);
  connections.inc(0); // listed from the start, as 0
  runtime.listener.server.on('connection', () => connections.inc());
}
