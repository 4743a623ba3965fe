import { describe, expect, it } from 'vitest';
import { createIdleWatchdog, type Exchange } from '../../../src/proxy/idle-watchdog.js';

function exchange(): Exchange & { idled: number } {
  const ex = { progress: 0, idled: 0, onIdle: () => ex.idled++ };
  return ex;
}

describe('idle watchdog', () => {
  it('fires once for an exchange without progress for the timeout, never for one that moves', () => {
    let t = 0;
    const w = createIdleWatchdog(1000, () => t);
    const stuck = exchange();
    const moving = exchange();
    w.watch(stuck);
    w.watch(moving);
    for (let step = 0; step < 20; step++) {
      t += 250;
      moving.progress++;
      w.sweep();
    }
    expect(stuck.idled).toBe(1);
    expect(moving.idled).toBe(0);
    expect(w.size()).toBe(1);
    // progress that stops is noticed a timeout later
    t += 999;
    w.sweep();
    expect(moving.idled).toBe(0);
    t += 1;
    w.sweep();
    expect(moving.idled).toBe(1);
    expect(w.size()).toBe(0);
    w.close();
  });

  it('forgets unwatched exchanges', () => {
    let t = 0;
    const w = createIdleWatchdog(100, () => t);
    const ex = exchange();
    w.watch(ex);
    w.unwatch(ex);
    t += 1000;
    w.sweep();
    expect(ex.idled).toBe(0);
    expect(w.size()).toBe(0);
  });
});
