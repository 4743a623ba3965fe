import { describe, expect, it } from 'vitest';
import { STREAMING_HEAP_FLAG, STREAMING_MALLOC_ENV, streamingMallocEnv, withStreamingHeap } from '../../../src/server/heap-flags.js';

describe('withStreamingHeap', () => {
  it.each([
    [[], [STREAMING_HEAP_FLAG]],
    [['--enable-source-maps'], ['--enable-source-maps', STREAMING_HEAP_FLAG]],
    [['--initial-old-space-size=128'], ['--initial-old-space-size=128']],
    [['--initial-heap-size=256'], ['--initial-heap-size=256']],
  ])('%j -> %j', (given, expected) => {
    expect(withStreamingHeap(given)).toEqual(expected);
  });

  it('is how the container image starts', async () => {
    const { readFileSync } = await import('node:fs');
    const dockerfile = readFileSync(new URL('../../../Dockerfile', import.meta.url), 'utf8');
    expect(dockerfile).toContain(`"node", "${STREAMING_HEAP_FLAG}"`);
    expect(dockerfile).toContain(`ENV MALLOC_TRIM_THRESHOLD_=${STREAMING_MALLOC_ENV.MALLOC_TRIM_THRESHOLD_}`);
  });
});

describe('streamingMallocEnv', () => {
  it.each([
    [{}, STREAMING_MALLOC_ENV],
    [{ PATH: '/bin' }, STREAMING_MALLOC_ENV],
    [{ MALLOC_ARENA_MAX: '2' }, {}],
    [{ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1' }, {}],
  ])('%j -> %j', (env, expected) => {
    expect(streamingMallocEnv(env)).toEqual(expected);
  });
});
