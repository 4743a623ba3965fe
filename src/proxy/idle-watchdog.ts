/**
 * Upstream idle timeout without per-chunk timer work. A socket timeout (`setTimeout` on the
 * upstream socket, which http-proxy's `proxyTimeout` uses) re-arms a timer on every read and write;
 * at blob speeds that cost 15–20 % of pull throughput in bench/tools (median of four 512 MiB pulls).
 * Instead each exchange bumps a counter when bytes move (the byte metrics count them anyway), and
 * one shared sweep aborts exchanges whose counter has not moved for `timeoutMs`: waiting for
 * response headers, a stalled upload and a stalled download are all "no progress".
 */
export interface Exchange {
  /** Incremented by the caller whenever body bytes move in either direction. */
  progress: number;
  /** Called once when the exchange has been idle for the timeout. */
  onIdle(): void;
}

interface Tracked {
  seen: number;
  since: number;
}

export function createIdleWatchdog(timeoutMs: number, now: () => number = () => performance.now()) {
  const tracked = new Map<Exchange, Tracked>();
  const period = Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4)));
  let timer: NodeJS.Timeout | undefined;

  function sweep(): void {
    const t = now();
    for (const [ex, state] of tracked) {
      if (ex.progress !== state.seen) {
        state.seen = ex.progress;
        state.since = t;
      } else if (t - state.since >= timeoutMs) {
        tracked.delete(ex);
        ex.onIdle();
      }
    }
    if (tracked.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  return {
    watch(ex: Exchange): void {
      tracked.set(ex, { seen: ex.progress, since: now() });
      if (!timer) {
        timer = setInterval(sweep, period);
        timer.unref();
      }
    },
    unwatch(ex: Exchange): void {
      tracked.delete(ex);
    },
    /** Exchanges being watched (tests check nothing is left behind). */
    size: () => tracked.size,
    sweep,
    close(): void {
      if (timer) clearInterval(timer);
      timer = undefined;
      tracked.clear();
    },
  };
}
