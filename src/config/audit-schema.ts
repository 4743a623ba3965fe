import { z } from 'zod';
import { durationWithin, httpURLProblem, intBetween, mapping, refineBy, text } from './fields.js';

/**
 * `audit:` where the typed audit events (audit/) go, and which identity claims they carry.
 * Absent: one stdout sink (the log stream, as the audit lines always were) and no claims.
 */

const stdoutSink = mapping({ type: z.literal('stdout') });

const fileSink = mapping({
  type: z.literal('file'),
  path: text.describe(
    'file the events are appended to, one JSON object a line (opened append-only; rotate by copy-truncate)',
  ),
  queueSize: intBetween(1, 1_000_000, ' (events)')
    .default(10_000)
    .describe('events waiting to be written; more are dropped and counted'),
});

const webhookSink = mapping({
  type: z.literal('webhook'),
  url: refineBy(text, httpURLProblem).describe(
    'receives CloudEvents 1.0 batches (POST, application/cloudevents-batch+json)',
  ),
  source: z.string().min(1).optional().describe('CloudEvents `source` attribute; default the proxy publicURL'),
  queueSize: intBetween(1, 1_000_000, ' (events)')
    .default(10_000)
    .describe('events waiting for delivery; more are dropped and counted'),
  batchSize: intBetween(1, 10_000, ' (events)').default(100).describe('most events in one POST'),
  timeout: durationWithin(100, 300_000, 'must be between 100ms and 5m').prefault('5s').describe('one delivery attempt'),
  retryMin: durationWithin(100, 600_000, 'must be between 100ms and 10m')
    .prefault('1s')
    .describe('first retry after a failed delivery (the floor)'),
  retryMax: durationWithin(100, 3_600_000, 'must be between 100ms and 1h')
    .prefault('1m')
    .describe('longest back-off between retries'),
});

const SINK = 'must be a mapping with type stdout, file or webhook';

export const auditSchema = mapping({
  sinks: z
    .array(z.discriminatedUnion('type', [stdoutSink, fileSink, webhookSink], { error: SINK }), {
      error: 'must be a list of sinks',
    })
    .default([{ type: 'stdout' }])
    .describe(
      'where audit events go: stdout (the log stream, default), file (append-only), webhook (CloudEvents batches)',
    ),
  claims: z
    .array(z.string({ error: 'must be a list of claim names' }).min(1), { error: 'must be a list of claim names' })
    .default([])
    .describe('identity-token claims copied into every event (registry tokens then carry the identity)'),
});

export type AuditConfig = z.output<typeof auditSchema>;
export type AuditSinkConfig = AuditConfig['sinks'][number];
