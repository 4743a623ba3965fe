import { describe, expect, it } from 'vitest';
import {
  STREAMING_HEAP_FLAG,
  STREAMING_MALLOC_ENV,
  STREAMING_SETTINGS_ENV,
  streamingMallocEnv,
  streamingRelaunch,
  withStreamingHeap,
} from '../../../src/server/heap-flags.js';

describe('withStreamingHeap', () => {
  it.each([
    [[], [STREAMING_HEAP_FLAG]],
    [['--enable-source-maps'], ['--enable-source-maps', STREAMING_HEAP_FLAG]],
    [['--initial-old-space-size=128'], ['--initial-old-space-size=128']],
    [['--initial-heap-size=256'], ['--initial-heap-size=256']],
  ])('%j -> %j', (given, expected) => {
    expect(withStreamingHeap(given)).toEqual(expected);
  });

  it('the container image adds none itself: its serve re-executes with them like every other entry point', async () => {
    const { readFileSync } = await import('node:fs');
    const dockerfile = readFileSync(new URL('../../../Dockerfile', import.meta.url), 'utf8');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "\/app\/bin\/registry-auth-proxy\.js"\]$/m);
    expect(dockerfile).not.toMatch(/initial-old-space-size|^ENV MALLOC_|NODE_OPTIONS/m);
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

describe('streamingRelaunch: what a serving process is re-executed with', () => {
  const applied = { [STREAMING_SETTINGS_ENV]: 'applied' };
  it.each([
    [
      'nothing chosen: both settings',
      [],
      {},
      { execArgv: [STREAMING_HEAP_FLAG], env: { ...STREAMING_MALLOC_ENV, ...applied } },
    ],
    [
      "the parent's flags kept (loader, inspector)",
      ['--import', 'tsx', '--inspect=0'],
      { PATH: '/bin' },
      {
        execArgv: ['--import', 'tsx', '--inspect=0', STREAMING_HEAP_FLAG],
        env: { ...STREAMING_MALLOC_ENV, ...applied },
      },
    ],
    [
      "the operator's heap size wins, malloc added",
      ['--initial-old-space-size=256'],
      {},
      { execArgv: ['--initial-old-space-size=256'], env: { ...STREAMING_MALLOC_ENV, ...applied } },
    ],
    [
      "the operator's malloc tuning wins, the flag added",
      [],
      { MALLOC_ARENA_MAX: '2' },
      { execArgv: [STREAMING_HEAP_FLAG], env: applied },
    ],
    [
      'the operator chose both: no re-exec',
      ['--initial-heap-size=128'],
      { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' },
      undefined,
    ],
    ['already applied by our launcher: never a second time', [], applied, undefined],
    ['opted out', [], { [STREAMING_SETTINGS_ENV]: 'off' }, undefined],
  ])('%s', (_name, execArgv, env: NodeJS.ProcessEnv, expected) => {
    expect(streamingRelaunch(execArgv, env)).toEqual(expected);
  });
});
