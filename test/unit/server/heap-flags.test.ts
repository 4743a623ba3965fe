import { describe, expect, it } from 'vitest';
import { STREAMING_HEAP_FLAG, withStreamingHeap } from '../../../src/server/heap-flags.js';

describe('withStreamingHeap', () => {
  it.each([
    [[], [STREAMING_HEAP_FLAG]],
    [['--enable-source-maps'], ['--enable-source-maps', STREAMING_HEAP_FLAG]],
    [['--initial-old-space-size=128'], ['--initial-old-space-size=128']],
    [['--initial-heap-size=256'], ['--initial-heap-size=256']],
  ])('%j -> %j', (given, expected) => {
    expect(withStreamingHeap(given)).toEqual(expected);
  });

  it('is the flag the container image starts with', async () => {
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(new URL('../../../Dockerfile', import.meta.url), 'utf8')).toContain(`"node", "${STREAMING_HEAP_FLAG}"`);
  });
});
