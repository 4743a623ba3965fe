import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Registry } from 'prom-client';
import type { Config, IssuerConfig } from '../config/types.js';
import { upstreamNameOf } from '../config/upstreams.js';
import type { Logger } from '../log.js';
import { loadPolicies } from '../policy/load.js';
import type { PolicyEngine } from '../policy/types.js';
import { loadKeyRing } from '../token/signing-keys.js';
import { streamingMallocEnv, withStreamingHeap } from './heap-flags.js';
import { WORKER_SLOT_ENV, type FromWorker, type ToWorker } from './cluster-protocol.js';

/**
 * `workers: N` (N > 1): the primary process of a node:cluster. It serves nothing itself: it checks
 * the config once, forks N workers that share the listening socket (connections handed out round
 * robin), gives them the one ephemeral signing key, answers their /metrics with the sum of all,
 * restarts a worker that dies, and when stopped (process.ts: on SIGTERM/SIGINT) has every worker
 * drain and exits when all did. The worker's side is cluster-worker.ts.
 */

/** Unexpected exits in this window count towards a restart storm; beyond the limit the primary gives up. */
const STORM_WINDOW_MS = 60_000;
const STORM_LIMIT = 5;
/** How long a worker has to hand over its metrics for a scrape before it is left out of the sum. */
const COLLECT_TIMEOUT_MS = 2_000;
/** After shutdownGrace, how long workers have to exit before they are killed. */
const EXIT_MARGIN_MS = 5_000;

/**
 * How long to wait before restarting a worker, given the times of unexpected exits so far (this
 * one included): 100 ms doubling per recent exit; undefined when they are a storm (give up). Pure.
 */
export function restartDelay(exits: readonly number[], now: number): number | undefined {
  const recent = exits.filter((t) => now - t < STORM_WINDOW_MS).length;
  if (recent > STORM_LIMIT) return undefined;
  return Math.min(5_000, 100 * 2 ** Math.max(0, recent - 1));
}

interface Primary {
  /** The policies as loaded (for the start-up lint). */
  policy: PolicyEngine;
  /** Resolves with the process's exit code once every worker has exited. */
  exited: Promise<number>;
  /** Has every worker drain, then `exited` resolves; `reason` is logged. Once: later calls do nothing. */
  stop(reason: string): void;
}

/**
 * Checks what every worker would (policies, keys: a bad config exits 2 once, not N times), then
 * forks `count` workers, handing them `clusterIssuer` (in-cluster mode, decided by the primary).
 * Throws what startRuntime would.
 */
export async function startPrimary(
  config: Config,
  count: number,
  logger: Logger,
  clusterIssuer?: IssuerConfig,
): Promise<Primary> {
  const policy = loadPolicies(config.policies, upstreamNameOf(config.upstreams));
  const keys = await loadKeyRing(config.tokens, logger, { configFile: config.file });
  // Generated (and warned about) here, once: all workers must sign with and publish the same key.
  const sharedEphemeralPem = keys.ephemeral
    ? (keys.current().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
    : undefined;
  keys.close();
  // limits.rules on the cluster store: the primary holds every worker's counters.
  // Loaded only with limits configured (rate-limiter-flexible and ioredis: ~30 MB of RSS).
  if (config.limits.rules.length) {
    const { startClusterCounters, storeKind } = await import('../limits/store.js');
    if (storeKind(config) === 'cluster') startClusterCounters();
  }
  const primary = new ClusterPrimary(config, logger, { type: 'rap:init', sharedEphemeralPem, clusterIssuer });
  primary.start(count);
  return { policy, exited: primary.exited, stop: (reason) => primary.stop(reason) };
}

interface Slot {
  n: number;
  worker: Worker;
  ready: boolean;
}

class ClusterPrimary {
  readonly exited: Promise<number>;
  private done!: (code: number) => void;
  private readonly slots = new Map<number, Slot>();
  private readonly restarting = new Set<NodeJS.Timeout>();
  private readonly exits: number[] = [];
  private readonly collections = new Map<
    number,
    { worker: Worker; resolve: (metrics: object[] | undefined) => void }
  >();
  private nextId = 0;
  private count = 0;
  /** Until every first worker is ready, a worker that dies is a failed start: stop, never retry. */
  private started = false;
  private stopping = false;
  private code = 0;
  private readonly registry = new Registry();
  private readonly restarts = new Counter({
    name: 'rap_worker_restarts_total',
    help: 'Workers that exited unexpectedly and were restarted (workers > 1)',
    registers: [this.registry],
  });

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly init: Extract<ToWorker, { type: 'rap:init' }>,
  ) {
    this.exited = new Promise((resolve) => (this.done = resolve));
  }

  start(count: number): void {
    this.count = count;
    cluster.setupPrimary({ execArgv: withStreamingHeap(process.execArgv) });
    cluster.on('message', (worker, message: FromWorker) => this.onMessage(worker, message));
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    for (let n = 1; n <= count; n++) this.fork(n);
  }

  private fork(n: number): void {
    const worker = cluster.fork({ ...streamingMallocEnv(process.env), [WORKER_SLOT_ENV]: String(n) });
    this.slots.set(n, { n, worker, ready: false });
  }

  private slotOf(worker: Worker): Slot | undefined {
    for (const slot of this.slots.values()) if (slot.worker === worker) return slot;
    return undefined;
  }

  private onMessage(worker: Worker, message: FromWorker): void {
    const slot = this.slotOf(worker);
    if (!slot) return;
    if (message.type === 'rap:hello') this.send(worker, this.init);
    else if (message.type === 'rap:ready') this.onReady(slot);
    else if (message.type === 'rap:collected') this.collections.get(message.id)?.resolve(message.metrics);
    else if (message.type === 'rap:metrics')
      void this.aggregate().then((text) => this.send(worker, { type: 'rap:metrics', id: message.id, text }));
  }

  private onReady(slot: Slot): void {
    slot.ready = true;
    if (this.started)
      return void this.logger.info({ worker: slot.n, pid: slot.worker.process.pid }, 'restarted worker serving');
    if ([...this.slots.values()].some((s) => !s.ready) || this.slots.size < this.count) return;
    this.started = true;
    this.logger.info(
      { workers: this.count, pids: [...this.slots.values()].map((s) => s.worker.process.pid) },
      'all workers serving',
    );
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(worker);
    if (!slot) return;
    this.slots.delete(slot.n);
    for (const c of this.collections.values()) if (c.worker === worker) c.resolve(undefined);
    const fields = { worker: slot.n, pid: worker.process.pid, code, signal };
    if (this.stopping) {
      if (code !== 0) this.logger.warn(fields, 'worker exited while stopping');
      return this.finishIfDone();
    }
    if (!this.started) {
      // Its error is on stderr already (config, address in use, …): a restart would only repeat it.
      this.logger.error(fields, 'worker failed to start: stopping');
      this.code = code || 1;
      return this.stop('a worker failed to start');
    }
    const now = Date.now();
    while (this.exits.length > 0 && now - this.exits[0]! >= STORM_WINDOW_MS) this.exits.shift();
    this.exits.push(now);
    const delay = restartDelay(this.exits, now);
    if (delay === undefined) {
      this.logger.error(
        { ...fields, exits: this.exits.length },
        `workers keep dying (more than ${STORM_LIMIT} in a minute): stopping`,
      );
      this.code = 1;
      return this.stop('restart storm');
    }
    // Exit code 0: it drained on its own SIGTERM (someone signalled the worker, not the primary).
    this.logger[code === 0 ? 'warn' : 'error'](
      { ...fields, restartInMs: delay },
      'worker exited unexpectedly: restarting it',
    );
    this.restarts.inc();
    const timer = setTimeout(() => {
      this.restarting.delete(timer);
      if (!this.stopping) this.fork(slot.n);
    }, delay);
    this.restarting.add(timer);
  }

  /** Every worker drains (ready ones on our word, starting ones on SIGTERM); whatever is left after the grace is killed. */
  stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.logger.info({ reason, workers: this.slots.size }, 'shutting down: workers finish in-flight requests');
    for (const timer of this.restarting) clearTimeout(timer);
    for (const slot of this.slots.values()) {
      if (slot.ready) this.send(slot.worker, { type: 'rap:drain' });
      else slot.worker.process.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      for (const slot of this.slots.values()) {
        this.logger.warn({ worker: slot.n, pid: slot.worker.process.pid }, 'worker did not exit in time: killing it');
        slot.worker.process.kill('SIGKILL');
      }
    }, this.config.shutdownGrace + EXIT_MARGIN_MS);
    void this.exited.then(() => clearTimeout(deadline));
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (this.stopping && this.slots.size === 0) this.done(this.code);
  }

  /** The metrics of every serving worker and of the primary, summed as prom-client does (each metric's aggregator). */
  private async aggregate(): Promise<string> {
    const serving = [...this.slots.values()].filter((s) => s.ready && s.worker.isConnected());
    const parts = await Promise.all(serving.map((s) => this.collect(s.worker)));
    const own = await this.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([...parts.filter((p) => p !== undefined), own]).metrics();
  }

  private collect(worker: Worker): Promise<object[] | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), COLLECT_TIMEOUT_MS);
      const finish = (metrics: object[] | undefined) => {
        clearTimeout(timer);
        this.collections.delete(id);
        resolve(metrics);
      };
      this.collections.set(id, { worker, resolve: finish });
      this.send(worker, { type: 'rap:collect', id });
    });
  }

  /** A worker that just died cannot be sent to: that is its exit's business, not an error here. */
  private send(worker: Worker, message: ToWorker): void {
    if (worker.isConnected()) worker.send(message, undefined, () => undefined);
  }
}
