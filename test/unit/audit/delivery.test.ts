import { describe, expect, it } from 'vitest';
import { backoff, createDelivery } from '../../../src/audit/delivery.js';
import { silentLogger } from '../../../src/log.js';

/** A sink whose behaviour the test switches: down (rejects), slow (never answers until released), up. */
function switchable() {
  let mode: 'up' | 'down' | 'slow' = 'up';
  const delivered: number[] = [];
  const held: (() => void)[] = [];
  return {
    set: (m: typeof mode) => (mode = m),
    delivered,
    holding: () => held.length,
    release: () => held.splice(0).forEach((r) => r()),
    send: (batch: readonly number[]) => {
      if (mode === 'down') return Promise.reject(new Error('ECONNREFUSED'));
      if (mode === 'slow')
        return new Promise<void>((resolve) => held.push(() => (delivered.push(...batch), resolve())));
      delivered.push(...batch);
      return Promise.resolve();
    },
  };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('bounded delivery', () => {
  it('backs off from the floor, doubling, capped', () => {
    expect([1, 2, 3, 4, 10].map((a) => backoff(a, 100, 500))).toEqual([100, 200, 400, 500, 500]);
    expect(backoff(1, 100, 50)).toBe(100);
  });

  it('down, then slow, then back: drops exactly what overflowed, loses nothing queued, resumes', async () => {
    const sink = switchable();
    let dropped = 0;
    const d = createDelivery<number>({
      name: 't',
      capacity: 10,
      batchSize: 4,
      retryMin: 10,
      retryMax: 20,
      send: sink.send,
      onDrop: (n) => (dropped += n),
      logger: silentLogger(),
    });
    sink.set('down');
    for (let i = 0; i < 25; i++) d.push(i); // 10 queued, 15 dropped; push never waits
    expect(dropped).toBe(15);
    sink.set('slow');
    await until(() => sink.holding() > 0); // a retry is now hanging on the slow sink
    expect(d.pending).toBe(10);
    for (let i = 25; i < 30; i++) d.push(i); // still full: dropped
    expect(dropped).toBe(20);
    sink.set('up');
    sink.release();
    await until(() => sink.delivered.length === 10);
    for (let i = 30; i < 33; i++) d.push(i);
    await until(() => sink.delivered.length === 13);
    expect(sink.delivered).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 30, 31, 32]);
    expect(dropped).toBe(20);
    await d.close();
    expect(dropped).toBe(20);
  });

  it('counts what is unsent at close, and drops after it', async () => {
    const sink = switchable();
    let dropped = 0;
    const d = createDelivery<number>({
      name: 't',
      capacity: 100,
      batchSize: 10,
      retryMin: 1000,
      retryMax: 1000,
      send: sink.send,
      onDrop: (n) => (dropped += n),
      logger: silentLogger(),
    });
    sink.set('down');
    for (let i = 0; i < 7; i++) d.push(i);
    await d.close();
    expect(dropped).toBe(7);
    d.push(8);
    expect(dropped).toBe(8);
  });
});
