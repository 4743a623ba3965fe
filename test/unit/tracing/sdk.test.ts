import { describe, expect, it } from 'vitest';
import { tracesURL } from '../../../src/tracing/sdk.js';

describe('tracesURL', () => {
  it.each([
    ['http://otel-collector:4318', 'http://otel-collector:4318/v1/traces'],
    ['http://otel-collector:4318/', 'http://otel-collector:4318/v1/traces'],
    ['https://gw.example/otlp', 'https://gw.example/otlp/v1/traces'],
    ['http://c:4318/v1/traces', 'http://c:4318/v1/traces'],
  ])('%s → %s (as OTEL_EXPORTER_OTLP_ENDPOINT is read)', (endpoint, url) => {
    expect(tracesURL(endpoint)).toBe(url);
  });
});
