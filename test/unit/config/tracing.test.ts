import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../src/config/load.js';
import { configProblem as problem } from '../../support/config.js';

/** `tracing:` (CONTRACT §9): off when absent; one key needed, the rest defaulted; mistakes named in the user's words. */
describe('tracing config', () => {
  it('is absent (off) unless configured', () => {
    expect(buildConfig({}, {}, 'rap.yaml').tracing).toBeUndefined();
  });

  it('needs only otlpEndpoint; the rest has defaults', () => {
    expect(buildConfig({ tracing: { otlpEndpoint: 'http://otel-collector:4318' } }, {}, 'rap.yaml').tracing).toEqual({
      otlpEndpoint: 'http://otel-collector:4318',
      serviceName: 'registry-auth-proxy',
      sampleRatio: 1,
      queueSize: 2048,
      timeout: 10_000,
    });
  });

  it.each([
    [true, 'tracing: must be a mapping {otlpEndpoint, serviceName?, sampleRatio?}'],
    [{}, 'tracing.otlpEndpoint: is required'],
    [{ otlpEndpoint: 'otel-collector:4318' }, 'tracing.otlpEndpoint: "otel-collector:4318" must be http or https'],
    [{ otlpEndpoint: 'collector' }, 'tracing.otlpEndpoint: "collector" is not a URL'],
    [{ otlpEndpoint: 'http://c:4318/?x=1' }, 'tracing.otlpEndpoint: must not carry a query or a fragment'],
    [{ otlpEndpoint: 'http://c:4318', sampleRatio: 2 }, 'tracing.sampleRatio: must be a number between 0 and 1'],
    [{ otlpEndpoint: 'http://c:4318', sampleRatio: '50%' }, 'tracing.sampleRatio: must be a number between 0 and 1'],
    [
      { otlpEndpoint: 'http://c:4318', queueSize: 0 },
      'tracing.queueSize: must be an integer between 1 and 100000 (spans)',
    ],
    [
      { otlpEndpoint: 'http://c:4318', endpoint: 'x' },
      'tracing.endpoint: unknown key (known: otlpEndpoint, serviceName, sampleRatio, queueSize, timeout)',
    ],
  ])('refuses %j: %s', (tracing, message) => {
    expect(problem({ tracing })).toBe(message);
  });
});
