import type { Logger } from '../log.js';

/**
 * A bounded queue in front of one slow sink (a file, a webhook): `push` never waits and never
 * throws. Events are sent in batches, one batch in flight; a batch that fails stays at the head and
 * is retried with exponential back-off (never sooner than `retryMin`), so nothing queued is lost
 * while the process runs. When the queue is full, the new event is dropped and counted: serving is
 * never slowed by a dead or slow sink. Delivery is at least once (a timed-out batch may have arrived).
 */

interface DeliveryOptions<T> {
  /** The sink's name, for the drop counter and the log line. */
  name: string;
  capacity: number;
  batchSize: number;
  retryMin: number;
  retryMax: number;
  send(batch: readonly T[]): Promise<void>;
  onDrop(count: number): void;
  logger: Logger;
  /** Drops are logged at most once per this many ms (default 10 s), with how many since the last line. */
  logEveryMs?: number;
}

interface Delivery<T> {
  push(item: T): void;
  /** Queued, the batch in flight included (it leaves the queue once delivered). */
  readonly pending: number;
  /** One last attempt for what is queued (the unsent counted as dropped), then nothing more is sent. */
  close(): Promise<void>;
}

/** The wait before retry `attempt` (1, 2, …): doubling from `min`, capped at `max`, never below `min`. Pure. */
export function backoff(attempt: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, min * 2 ** Math.min(attempt - 1, 30)));
}

/** Counts every drop; logs them at most once per `logEveryMs`, with how many since the last line. */
function dropRecorder(opts: DeliveryOptions<unknown>, queued: () => number): (count: number, why: string) => void {
  let unlogged = 0;
  let lastLog = -Infinity;
  return (count, why) => {
    if (count <= 0) return;
    opts.onDrop(count);
    unlogged += count;
    const now = performance.now();
    if (now - lastLog < (opts.logEveryMs ?? 10_000)) return;
    lastLog = now;
    opts.logger.warn({ sink: opts.name, dropped: unlogged, queued: queued() }, `audit events dropped: ${why}`);
    unlogged = 0;
  };
}

export function createDelivery<T>(opts: DeliveryOptions<T>): Delivery<T> {
  const queue: T[] = [];
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> | undefined;
  let closed = false;
  const drop = dropRecorder(opts as DeliveryOptions<unknown>, () => queue.length);

  async function attempt(): Promise<boolean> {
    const batch = queue.slice(0, opts.batchSize);
    try {
      await opts.send(batch);
      queue.splice(0, batch.length);
      failures = 0;
      return true;
    } catch (err) {
      failures++;
      if (failures === 1 || failures % 10 === 0)
        opts.logger.warn(
          { sink: opts.name, err: (err as Error).message, failures },
          'audit sink delivery failed: retrying',
        );
      return false;
    }
  }

  function pump(): void {
    if (sending || timer || closed || queue.length === 0) return;
    sending = attempt().then((ok) => {
      sending = undefined;
      if (ok) return pump();
      if (!closed)
        timer = setTimeout(
          () => ((timer = undefined), pump()),
          backoff(failures, opts.retryMin, opts.retryMax),
        ).unref();
    });
  }

  return {
    push(item) {
      if (closed) return drop(1, 'sink closed');
      if (queue.length >= opts.capacity) return drop(1, 'queue full (sink down or slow)');
      queue.push(item);
      pump();
    },
    get pending() {
      return queue.length;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await sending;
      while (queue.length > 0 && (await attempt()));
      drop(queue.length, 'unsent at shutdown');
      queue.length = 0;
    },
  };
}
