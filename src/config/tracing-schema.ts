import { z } from 'zod';
import { durationWithin, httpURLProblem, intBetween, mapping, refineBy, text } from './fields.js';

/**
 * `tracing:` OpenTelemetry traces sent to a collector over OTLP/HTTP (tracing/). Absent: off, and
 * the SDK is never loaded.
 */

/** The collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it; a URL already naming `/v1/traces` is used as it is. */
function endpointProblem(s: string): string | undefined {
  const problem = httpURLProblem(s);
  if (problem) return problem;
  const u = new URL(s);
  return u.search || u.hash ? 'must not carry a query or a fragment' : undefined;
}

export const tracingSchema = mapping(
  {
    otlpEndpoint: refineBy(text, endpointProblem).describe(
      'OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 (spans are POSTed to <otlpEndpoint>/v1/traces)',
    ),
    serviceName: text.default('registry-auth-proxy').describe('service.name of the spans; default registry-auth-proxy'),
    sampleRatio: z
      .number({ error: 'must be a number between 0 and 1' })
      .min(0, 'must be a number between 0 and 1')
      .max(1, 'must be a number between 0 and 1')
      .default(1)
      .describe(
        "share of new traces recorded, 0 … 1; a client's traceparent decides for its own trace; default 1 (all)",
      ),
    queueSize: intBetween(1, 100_000, ' (spans)')
      .default(2048)
      .describe('finished spans waiting for export; more (a slow or dead collector) are dropped'),
    timeout: durationWithin(100, 60_000, 'must be between 100ms and 1m')
      .prefault('10s')
      .describe('one export request to the collector'),
  },
  { notAMapping: 'must be a mapping {otlpEndpoint, serviceName?, sampleRatio?}' },
);

export type TracingConfig = z.output<typeof tracingSchema>;
