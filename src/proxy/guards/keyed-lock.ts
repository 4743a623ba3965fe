/**
 * An in-process mutex per key (here: upstream, repository and tag), so that a check of the upstream
 * and the write it allows are not interleaved with another write of the same tag in this process.
 * Waiting is bounded (`waitMs`, and at most `maxWaiters` per key): a caller that cannot get the lock
 * gets undefined. It cannot order writes made through other processes or replicas (docs/policies.md).
 */
interface KeyedLock {
  /** The release function once the key is ours, or undefined after waiting `waitMs` in vain. Release is idempotent. */
  acquire(key: string): Promise<(() => void) | undefined>;
  /** Keys held or waited for (tests). */
  size(): number;
}

export function createKeyedLock(waitMs: number, maxWaiters = 64): KeyedLock {
  /** A held key maps to the grants of those waiting for it, in order. */
  const held = new Map<string, (() => void)[]>();

  const releaser = (key: string): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = held.get(key)?.shift();
      if (next) next();
      else held.delete(key);
    };
  };

  return {
    acquire(key) {
      const waiting = held.get(key);
      if (!waiting) {
        held.set(key, []);
        return Promise.resolve(releaser(key));
      }
      if (waiting.length >= maxWaiters) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const grant = (): void => {
          clearTimeout(timer);
          resolve(releaser(key));
        };
        const timer = setTimeout(() => {
          const i = waiting.indexOf(grant);
          if (i >= 0) waiting.splice(i, 1);
          resolve(undefined);
        }, waitMs);
        waiting.push(grant);
      });
    },
    size: () => held.size,
  };
}
