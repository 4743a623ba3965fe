import { z } from 'zod';
import { durationWithin, httpURLProblem, intBetween, mapping, refineBy, text } from './fields.js';

/**
 * `audit:` where the typed audit events (audit/) go, and which identity claims they carry.
 * Absent: one stdout sink (the log stream, as the audit lines always were) and no claims.
 */

const stdoutSink = mapping({ type: z.literal('stdout') });

/** CONTRACT.md §9 names the queue bound `queue`; the key it had before says so rather than "unknown key". */
const renamedQueue = z.never({ error: '`queueSize` is now `queue` (the events waiting; more are dropped)' }).optional();

const queue = intBetween(1, 1_000_000, ' (events)').default(10_000);

const fileSink = mapping(
  {
    type: z.literal('file'),
    path: text.describe(
      'file the events are appended to, one JSON object a line (opened append-only; rotate by copy-truncate)',
    ),
    queue: queue.describe('events waiting to be written; more are dropped and counted'),
    queueSize: renamedQueue,
  },
  { hidden: ['queueSize'] },
);

const webhookSink = mapping(
  {
    type: z.literal('webhook'),
    url: refineBy(text, httpURLProblem).describe(
      'receives the events as batches (POST): CloudEvents 1.0 or Distribution notification envelopes, per `format`',
    ),
    format: z
      .enum(['cloudevents', 'distribution'], { error: 'must be cloudevents or distribution' })
      .default('cloudevents')
      .describe(
        'cloudevents: application/cloudevents-batch+json, every event; distribution: the registry notification envelope (application/vnd.docker.distribution.events.v2+json) of pulls, pushes and deletes, for tools that consume Distribution notifications',
      ),
    source: z.string().min(1).optional().describe('CloudEvents `source` attribute; default the proxy publicURL'),
    queue: queue.describe('events waiting for delivery; more are dropped and counted'),
    queueSize: renamedQueue,
    batchSize: intBetween(1, 10_000, ' (events)').default(100).describe('most events in one POST'),
    timeout: durationWithin(100, 300_000, 'must be between 100ms and 5m')
      .prefault('5s')
      .describe('one delivery attempt'),
    retryMin: durationWithin(100, 600_000, 'must be between 100ms and 10m')
      .prefault('1s')
      .describe('first retry after a failed delivery (the floor)'),
    retryMax: durationWithin(100, 3_600_000, 'must be between 100ms and 1h')
      .prefault('1m')
      .describe('longest back-off between retries'),
  },
  { hidden: ['queueSize'] },
);

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
    .describe(
      'identity-token claims copied into every event and into the decision log (registry tokens then carry the identity)',
    ),
  decisionLog: mapping({
    path: text.describe(
      'file each /token decision is appended to, one JSON object a line: the identity, the `claims` listed here, the scopes, the policy digest and the outcome (never a token); `policy replay --log` re-decides it',
    ),
    queue: queue.describe('decisions waiting to be written; more are dropped and counted'),
  })
    .optional()
    .describe("opt-in log of every /token decision's inputs, for `registry-auth-proxy policy replay`"),
});

export type AuditConfig = z.output<typeof auditSchema>;
export type AuditSinkConfig = AuditConfig['sinks'][number];
