import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../src/config/load.js';
import { configProblem as problem } from '../../support/config.js';

/** `audit:` as CONTRACT.md §9 writes it: sinks with `queue`, webhook `format`, `decisionLog: {path}`. */
const base = { upstream: { url: 'http://u' } };
const audit = (a: unknown) => buildConfig({ ...base, audit: a }, {}, 'rap.yaml').audit;

describe('audit: (CONTRACT §9)', () => {
  it("takes the contract's example as written", () => {
    const a = audit({
      claims: ['repository', 'ref', 'namespace'],
      sinks: [
        { type: 'stdout' },
        { type: 'file', path: '/var/log/rap/audit.jsonl' },
        { type: 'webhook', url: 'https://collector/events', format: 'cloudevents', queue: 10000 },
      ],
      decisionLog: { path: '/var/log/rap/decisions.jsonl' },
    });
    expect(a?.sinks[1]).toEqual({ type: 'file', path: '/var/log/rap/audit.jsonl', queue: 10000 });
    expect(a?.sinks[2]).toMatchObject({ type: 'webhook', format: 'cloudevents', queue: 10000, batchSize: 100 });
    expect(a?.decisionLog).toEqual({ path: '/var/log/rap/decisions.jsonl', queue: 10000 });
  });

  it('webhook format defaults to cloudevents; distribution is the other; anything else is named', () => {
    expect(audit({ sinks: [{ type: 'webhook', url: 'http://c' }] })?.sinks[0]).toMatchObject({ format: 'cloudevents' });
    expect(audit({ sinks: [{ type: 'webhook', url: 'http://c', format: 'distribution' }] })?.sinks[0]).toMatchObject({
      format: 'distribution',
    });
    expect(problem({ ...base, audit: { sinks: [{ type: 'webhook', url: 'http://c', format: 'harbor' }] } })).toBe(
      'audit.sinks[0].format: must be cloudevents or distribution',
    );
  });

  it('the former `queueSize` names its replacement, on the file and the webhook sink', () => {
    expect(problem({ ...base, audit: { sinks: [{ type: 'webhook', url: 'http://c', queueSize: 5 }] } })).toBe(
      'audit.sinks[0].queueSize: `queueSize` is now `queue` (the events waiting; more are dropped)',
    );
    expect(problem({ ...base, audit: { sinks: [{ type: 'file', path: '/x', queueSize: 5 }] } })).toBe(
      'audit.sinks[0].queueSize: `queueSize` is now `queue` (the events waiting; more are dropped)',
    );
    // and is not offered as a known key
    expect(problem({ ...base, audit: { sinks: [{ type: 'file', path: '/x', queu: 5 }] } })).toBe(
      'audit.sinks[0].queu: unknown key (known: type, path, queue)',
    );
  });

  it('decisionLog needs a path and takes nothing unknown', () => {
    expect(audit({})?.decisionLog).toBeUndefined();
    expect(problem({ ...base, audit: { decisionLog: {} } })).toBe('audit.decisionLog.path: is required');
    expect(problem({ ...base, audit: { decisionLog: { path: '/d', claims: ['x'] } } })).toBe(
      'audit.decisionLog.claims: unknown key (known: path, queue)',
    );
    expect(problem({ ...base, audit: { decisionLog: { path: '/d', queue: 0 } } })).toBe(
      'audit.decisionLog.queue: must be an integer between 1 and 1000000 (events)',
    );
  });
});
