import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../src/config/load.js';
import { restartDelay } from '../../../src/server/cluster.js';
import { cgroupCpuLimit, workerCount, type CgroupCpuFiles } from '../../../src/server/cpus.js';
import { configProblem } from '../../support/config.js';

describe('the cgroup CPU quota', () => {
  const cases: [string, CgroupCpuFiles, number | undefined][] = [
    ['no cgroup files', {}, undefined],
    ['v2 without a quota', { cpuMax: 'max 100000\n' }, undefined],
    ['v2, 2 CPUs', { cpuMax: '200000 100000\n' }, 2],
    ['v2, 1.5 CPUs round up', { cpuMax: '150000 100000' }, 2],
    ['v2, half a CPU is still one worker', { cpuMax: '50000 100000' }, 1],
    ['v2, 4 CPUs over a 50 ms period', { cpuMax: '200000 50000' }, 4],
    ['v2, quota alone (period defaults to 100 ms)', { cpuMax: '300000' }, 3],
    ['v2 garbage', { cpuMax: 'lots' }, undefined],
    ['v2 with a zero period', { cpuMax: '100000 0' }, undefined],
    ['v1 without a quota', { cfsQuota: '-1\n', cfsPeriod: '100000\n' }, undefined],
    ['v1, 3 CPUs', { cfsQuota: '300000\n', cfsPeriod: '100000\n' }, 3],
    ['v1, 0.2 CPUs', { cfsQuota: '20000', cfsPeriod: '100000' }, 1],
    ['v2 wins over v1', { cpuMax: 'max 100000', cfsQuota: '100000', cfsPeriod: '100000' }, undefined],
  ];
  it.each(cases)('%s', (_name, files, expected) => {
    expect(cgroupCpuLimit(files)).toBe(expected);
  });
});

describe('the worker count', () => {
  const cases: [number | 'auto', number, number | undefined, number][] = [
    [1, 16, undefined, 1],
    [4, 2, 1, 4], // a number is taken as given, quota or not
    ['auto', 16, undefined, 16],
    ['auto', 16, 2, 2], // a pod limited to 2 CPUs on a 16-core node
    ['auto', 2, 8, 2], // a quota above the CPUs there are
    ['auto', 1, undefined, 1],
  ];
  it.each(cases)('workers: %s with %i CPUs and quota %s is %i', (setting, cpus, quota, expected) => {
    expect(workerCount(setting, cpus, quota)).toBe(expected);
  });
});

describe('worker restarts', () => {
  it('back off from 100 ms and give up on a storm', () => {
    const now = 1_000_000;
    const exits: number[] = [];
    const delays = [];
    for (let i = 0; i < 6; i++) {
      exits.push(now - 1000 + i);
      delays.push(restartDelay(exits, now));
    }
    expect(delays).toEqual([100, 200, 400, 800, 1600, undefined]);
  });

  it('forget exits older than a minute', () => {
    const now = 1_000_000;
    expect(restartDelay([now - 120_000, now - 90_000, now - 61_000, now - 60_001, now - 60_000, now], now)).toBe(100);
  });
});

describe('workers in the config', () => {
  it('defaults to 1, takes a count or auto', () => {
    expect(buildConfig({}).workers).toBe(1);
    expect(buildConfig({ workers: 4 }).workers).toBe(4);
    expect(buildConfig({ workers: 'auto' }).workers).toBe('auto');
  });

  it.each([0, -1, 'many', 2.5, '2', null, 1025])('refuses workers: %j', (value) => {
    expect(configProblem({ workers: value })).toBe('workers: must be a whole number from 1 to 1024, or auto');
  });

  it('takes --workers over the file, and names the flag in its problems', () => {
    expect(buildConfig({ workers: 4 }, { workers: 'auto' }).workers).toBe('auto');
    expect(buildConfig({ workers: 'auto' }, { workers: '3' }).workers).toBe(3);
    for (const flag of ['0', '-1', 'many', '1.5', '']) {
      expect(() => buildConfig({}, { workers: flag }, 'rap.yaml'), flag).toThrow(
        '<flags>: --workers: must be a whole number from 1 to 1024, or auto',
      );
    }
  });
});
