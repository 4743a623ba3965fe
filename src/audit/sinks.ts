import { createWriteStream } from 'node:fs';
import type { AuditSinkConfig } from '../config/audit-schema.js';
import { outbound, outboundAgent } from '../http/outbound.js';
import type { Logger } from '../log.js';
import { CLOUDEVENTS_BATCH, toCloudEvent } from './cloudevents.js';
import { createDelivery } from './delivery.js';
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
 * The log stream, where the audit lines always went: the same fields, at info, with the message
 * they always had. pino stamps its own `time`, so the event's is left out.
 */
function stdoutSink(logger: Logger): AuditSink {
  return {
    name: 'stdout',
    write(event) {
      const { time: _time, ...fields } = event;
      logger.info(fields, eventMessage(event));
    },
    async close() {},
  };
}

/** One JSON object a line, appended; a write that fails (disk full) is retried like a webhook's. */
function fileSink(config: Extract<AuditSinkConfig, { type: 'file' }>, deps: SinkDeps): AuditSink {
  const stream = createWriteStream(config.path, { flags: 'a' });
  let broken: Error | undefined;
  stream.on('error', (err) => (broken = err));
  const name = `file:${config.path}`;
  const delivery = createDelivery<AuditEvent>({
    name,
    capacity: config.queueSize,
    batchSize: 1000,
    retryMin: 1000,
    retryMax: 60_000,
    logger: deps.logger,
    onDrop: (n) => deps.onDrop(name, n),
    send: (batch) =>
      new Promise((resolve, reject) => {
        if (broken) return reject(broken);
        stream.write(batch.map((e) => `${JSON.stringify(e)}\n`).join(''), (err) => (err ? reject(err) : resolve()));
      }),
  });
  return {
    name,
    write: (event) => delivery.push(event),
    async close() {
      await delivery.close();
      await new Promise<void>((resolve) => stream.end(resolve));
    },
  };
}

/** CloudEvents batches POSTed to a URL; any 2xx is delivered, anything else is retried. */
function webhookSink(config: Extract<AuditSinkConfig, { type: 'webhook' }>, deps: SinkDeps): AuditSink {
  const dispatcher = outboundAgent({ timeoutMs: config.timeout });
  const source = config.source ?? deps.source;
  const url = new URL(config.url);
  const name = `webhook:${url.host}`;
  const delivery = createDelivery<AuditEvent>({
    name,
    capacity: config.queueSize,
    batchSize: config.batchSize,
    retryMin: config.retryMin,
    retryMax: Math.max(config.retryMin, config.retryMax),
    logger: deps.logger,
    onDrop: (n) => deps.onDrop(name, n),
    async send(batch) {
      const body = JSON.stringify(batch.map((e) => toCloudEvent(e, source)));
      const answer = await outbound(url, {
        method: 'POST',
        dispatcher,
        timeoutMs: config.timeout,
        headers: { 'content-type': CLOUDEVENTS_BATCH },
        body,
      });
      if (answer.status < 200 || answer.status > 299) throw new Error(`${url.host} answered HTTP ${answer.status}`);
    },
  });
  return {
    name,
    write: (event) => delivery.push(event),
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
