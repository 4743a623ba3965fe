import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { PolicyLoadError } from '../../../src/policy/load.js';
import { WORKER_SLOT_ENV } from '../../../src/server/cluster-protocol.js';
import { processRole, signalActions, startFailure, type ProcessRole } from '../../../src/server/process-role.js';

const workers = (count: number) => ({ count, cpus: 8 });

describe('the process role', () => {
  const cases: [string, boolean, NodeJS.ProcessEnv, number, ProcessRole['role']][] = [
    ['workers: 1', false, {}, 1, 'single'],
    ['workers: 4', false, {}, 4, 'primary'],
    ['a worker our primary forked', true, { [WORKER_SLOT_ENV]: '3' }, 4, 'worker'],
    ['a worker is a worker whatever it resolves workers to', true, { [WORKER_SLOT_ENV]: '1' }, 1, 'worker'],
    ["another cluster's worker (pm2) with workers: 1", true, {}, 1, 'single'],
    ["another cluster's worker (pm2) with workers: 4", true, {}, 4, 'primary'],
    ['the slot env outside a cluster worker', false, { [WORKER_SLOT_ENV]: '2' }, 1, 'single'],
    ['a slot that is not a positive integer', true, { [WORKER_SLOT_ENV]: '0' }, 1, 'single'],
    ['a slot that is not a number', true, { [WORKER_SLOT_ENV]: 'x' }, 1, 'single'],
  ];
  it.each(cases)('%s', (_name, clusterWorker, env, count, expected) => {
    expect(processRole({ clusterWorker, env, workers: workers(count) }).role).toBe(expected);
  });

  it('carries the slot of a worker and the resolved workers of a primary', () => {
    expect(processRole({ clusterWorker: true, env: { [WORKER_SLOT_ENV]: '2' }, workers: workers(1) })).toEqual({
      role: 'worker',
      slot: 2,
    });
    expect(processRole({ clusterWorker: false, env: {}, workers: workers(3) })).toEqual({
      role: 'primary',
      workers: workers(3),
    });
  });
});

describe('signals', () => {
  const cases: [ProcessRole['role'], NodeJS.Signals, 'stop' | 'ignore' | undefined][] = [
    ['single', 'SIGTERM', 'stop'],
    ['single', 'SIGINT', 'stop'],
    ['single', 'SIGHUP', undefined],
    ['primary', 'SIGTERM', 'stop'],
    ['primary', 'SIGINT', 'stop'],
    ['primary', 'SIGHUP', undefined],
    ['worker', 'SIGTERM', 'stop'],
    // Ctrl-C reaches the whole process group: the primary has the workers drain
    ['worker', 'SIGINT', 'ignore'],
    ['worker', 'SIGHUP', undefined],
  ];
  it.each(cases)('a %s process on %s: %s', (role, signal, expected) => {
    expect(signalActions(role)[signal]).toBe(expected);
  });
});

describe('start-up failures', () => {
  const listen = { host: '127.0.0.1', port: 8080 };
  const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
  const cases: [string, unknown, { code: number; message: string } | undefined][] = [
    [
      'a bad policy is a usage error',
      new PolicyLoadError('p.yaml', 'r', 'bad'),
      { code: 2, message: 'policy error: p.yaml: rule "r": bad' },
    ],
    [
      'a taken address is an operational failure, with the fix',
      inUse,
      {
        code: 1,
        message:
          'cannot listen on 127.0.0.1:8080: the address is in use (another process listens there): stop that process, or choose another address with --listen <host:port> (config key listen)',
      },
    ],
    ['a config error speaks for itself', new ConfigError('c.yaml', 'issuers', 'bad'), undefined],
    ['anything else speaks for itself', new Error('boom'), undefined],
    ['a thrown non-error', undefined, undefined],
  ];
  it.each(cases)('%s', (_name, err, expected) => {
    expect(startFailure(err, listen)).toEqual(expected);
  });
});
