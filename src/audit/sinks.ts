import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { AuditSinkConfig } from '../config/audit-schema.js';
import { outbound, outboundAgent } from '../http/outbound.js';
import type { Logger } from '../log.js';
import { CLOUDEVENTS_BATCH, toCloudEvent } from './cloudevents.js';
import { createDelivery } from './delivery.js';
import { DISTRIBUTION_EVENTS, toDistributionEvent } from './distribution.js';
import { eventMessage, type AuditEvent } from './events.js';

/** Where audit events go. `write` never waits and never throws; `close` flushes what it can. */
export interface AuditSink {
  readonly name: string;
  write(event: AuditEvent): void;
  close(): Promise<void>;
}

interface SinkDeps {
  logger: Logger;
  /** CloudEvents `source` when the sink names none. */
  source: string;
  onDrop(sink: string, count: number): void;
}

/**
 * Where an event could hold a secret: nowhere by construction (events.ts types every field), but a
 * claim the operator lists is the issuer's to name. The log stream's own redaction (log.ts) has
 * wildcard paths that clone each line's object: on an event's ~20 fields that was 4 µs of a 9 µs
 * line (2026-12-06, pino 10.4), so events go through a child logger with exact paths instead.
 */
const EVENT_REDACT = ['token', 'password', 'refresh_token', 'claims.token', 'claims.password', 'claims.refresh_token'];

/**
 * The log stream, where the audit lines always went: the same fields, at info, with the message
 * they always had. pino stamps its own `time`, so the event's is left out.
 */
function stdoutSink(logger: Logger): AuditSink {
  const events = logger.child({}, { redact: { paths: EVENT_REDACT, censor: '[redacted]' } });
  return {
    name: 'stdout',
    write(event) {
      const { time: _time, ...fields } = event;
      events.info(fields, eventMessage(event));
    },
    async close() {},
  };
}

/** An append-only JSON-lines file behind a bounded queue: the file sink, and the decision log. */
export interface JsonLines<T> {
  push(record: T): void;
  close(): Promise<void>;
}

/** One JSON object a line, appended; a write that fails (disk full) is retried like a webhook's. */
export function appendJsonLines<T>(
  path: string,
  capacity: number,
  name: string,
  deps: Pick<SinkDeps, 'logger'> & { onDrop(count: number): void },
): JsonLines<T> {
  const stream = createWriteStream(path, { flags: 'a' });
  let broken: Error | undefined;
  stream.on('error', (err) => (broken = err));
  const delivery = createDelivery<T>({
    name,
    capacity,
    batchSize: 1000,
    retryMin: 1000,
    retryMax: 60_000,
    logger: deps.logger,
    onDrop: deps.onDrop,
    send: (batch) =>
      new Promise((resolve, reject) => {
        if (broken) return reject(broken);
        stream.write(batch.map((e) => `${JSON.stringify(e)}\n`).join(''), (err) => (err ? reject(err) : resolve()));
      }),
  });
  return {
    push: (record) => delivery.push(record),
    async close() {
      await delivery.close();
      await new Promise<void>((resolve) => stream.end(resolve));
    },
  };
}

function fileSink(config: Extract<AuditSinkConfig, { type: 'file' }>, deps: SinkDeps): AuditSink {
  const name = `file:${config.path}`;
  const lines = appendJsonLines<AuditEvent>(config.path, config.queue, name, {
    logger: deps.logger,
    onDrop: (n) => deps.onDrop(name, n),
  });
  return { name, write: (event) => lines.push(event), close: () => lines.close() };
}

/** How a webhook's batch goes on the wire: what is queued of an event (undefined: nothing), and the body. */
interface WireFormat<T> {
  contentType: string;
  item(event: AuditEvent): T | undefined;
  body(batch: readonly T[]): unknown;
}

function wireFormat(config: Extract<AuditSinkConfig, { type: 'webhook' }>, deps: SinkDeps): WireFormat<unknown> {
  const source = config.source ?? deps.source;
  if (config.format === 'distribution') {
    // Converted when queued: events Distribution would not notify never take a place in the queue.
    const from = { publicURL: deps.source, instanceID: randomUUID() };
    return {
      contentType: DISTRIBUTION_EVENTS,
      item: (e) => toDistributionEvent(e, from),
      body: (events) => ({ events }),
    };
  }
  return {
    contentType: CLOUDEVENTS_BATCH,
    item: (e) => e,
    body: (batch) => batch.map((e) => toCloudEvent(e as AuditEvent, source)),
  };
}

/** Batches POSTed to a URL (CloudEvents, or Distribution's envelope); any 2xx is delivered, anything else is retried. */
function webhookSink(config: Extract<AuditSinkConfig, { type: 'webhook' }>, deps: SinkDeps): AuditSink {
  const dispatcher = outboundAgent({ timeoutMs: config.timeout });
  const format = wireFormat(config, deps);
  const url = new URL(config.url);
  const name = `webhook:${url.host}`;
  const delivery = createDelivery<unknown>({
    name,
    capacity: config.queue,
    batchSize: config.batchSize,
    retryMin: config.retryMin,
    retryMax: Math.max(config.retryMin, config.retryMax),
    logger: deps.logger,
    onDrop: (n) => deps.onDrop(name, n),
    async send(batch) {
      const answer = await outbound(url, {
        method: 'POST',
        dispatcher,
        timeoutMs: config.timeout,
        headers: { 'content-type': format.contentType },
        body: JSON.stringify(format.body(batch)),
      });
      if (answer.status < 200 || answer.status > 299) throw new Error(`${url.host} answered HTTP ${answer.status}`);
    },
  });
  return {
    name,
    write(event) {
      const item = format.item(event);
      if (item !== undefined) delivery.push(item);
    },
    async close() {
      await delivery.close();
      await dispatcher.close();
    },
  };
}

export function createSink(config: AuditSinkConfig, deps: SinkDeps): AuditSink {
  if (config.type === 'stdout') return stdoutSink(deps.logger);
  if (config.type === 'file') return fileSink(config, deps);
  return webhookSink(config, deps);
}
