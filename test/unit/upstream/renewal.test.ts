import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../../src/log.js';
import {
  RENEWAL_CEILING_MS,
  RENEWAL_FLOOR_MS,
  renewalDelay,
  renewalPacer,
  type RenewalOutcome,
} from '../../../src/upstream/renewal.js';

const H = 3600_000;

describe('renewalDelay: when to renew a background credential', () => {
  it.each([
    // lifetime left (ms), short answers before, → delay (ms), short answers now
    ['ECR: 12 h → at 80 %', 12 * H, 0, 9.6 * H, 0],
    ['a long lifetime ends a run of short ones', 12 * H, 5, 9.6 * H, 0],
    ['exactly at the floor: 80 % of 3.75 s', RENEWAL_FLOOR_MS / 0.8, 0, RENEWAL_FLOOR_MS, 0],
    ['just below the floor: the floor', RENEWAL_FLOOR_MS, 0, RENEWAL_FLOOR_MS, 1],
    ['already expired: the floor, never 0', -60_000, 0, RENEWAL_FLOOR_MS, 1],
    ['expired again: doubled', -60_000, 1, 2 * RENEWAL_FLOOR_MS, 2],
    ['expired a third time: doubled again', -60_000, 2, 4 * RENEWAL_FLOOR_MS, 3],
    ['many times: the ceiling', -60_000, 7, RENEWAL_CEILING_MS, 8],
    ['no end of them: still the ceiling', -60_000, 10_000, RENEWAL_CEILING_MS, 10_001],
    ['no expiry to read (NaN): short', Number.NaN, 0, RENEWAL_FLOOR_MS, 1],
    ['a lifetime past what setTimeout takes: capped at 2^31-1', 1e12, 0, 2 ** 31 - 1, 0],
  ])('%s', (_what, lifetime, streak, delayMs, shortStreak) => {
    expect(renewalDelay(lifetime, streak)).toEqual({ delayMs, shortStreak });
  });

  it('a floor of some seconds and a ceiling of minutes', () => {
    expect(RENEWAL_FLOOR_MS).toBeGreaterThanOrEqual(1000);
    expect(RENEWAL_CEILING_MS).toBeGreaterThanOrEqual(60_000);
  });
});

describe('renewalPacer', () => {
  it('warns once when short lifetimes start (not per renewal), says when they end, and reports each call', async () => {
    const out = new PassThrough();
    const lines: { level: number; msg: string }[] = [];
    out.on('data', (d: Buffer) =>
      lines.push(
        ...d
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { level: number; msg: string }),
      ),
    );
    const seen: [RenewalOutcome, number | undefined][] = [];
    const pacer = renewalPacer('the ECR authorization token', createLogger('info', out), (o, b) => seen.push([o, b]));
    const delays = [pacer.answered(-1000), pacer.answered(-1000), pacer.answered(-1000)];
    expect(delays).toEqual([RENEWAL_FLOOR_MS, 2 * RENEWAL_FLOOR_MS, 4 * RENEWAL_FLOOR_MS]);
    expect(pacer.backingOff).toBe(true);
    await expect(pacer.attempt(() => Promise.reject(new Error('throttled')))).rejects.toThrow('throttled');
    expect(await pacer.attempt(() => Promise.resolve('answer'))).toBe('answer');
    expect(pacer.answered(12 * H)).toBe(9.6 * H);
    expect(pacer.backingOff).toBe(false);
    expect(seen).toEqual([
      ['short-lifetime', RENEWAL_FLOOR_MS],
      ['short-lifetime', 2 * RENEWAL_FLOOR_MS],
      ['short-lifetime', 4 * RENEWAL_FLOOR_MS],
      ['error', undefined],
      ['ok', 0],
    ]);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
          expect.stringMatching(/^the ECR authorization token came back already expired/),
        ]);
        expect(lines.filter((l) => l.level === 30).map((l) => l.msg)).toEqual([
          'the ECR authorization token has a usable lifetime again',
        ]);
        resolve();
      }),
    );
  });
});
