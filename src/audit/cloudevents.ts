import { randomUUID } from 'node:crypto';
import type { AuditEvent } from './events.js';

/**
 * CloudEvents 1.0, structured JSON mode, batched (`application/cloudevents-batch+json`: a JSON
 * array of events). The event's `type` names the schema and the kind; `data` is the audit event
 * itself, so a consumer reads the same fields whichever sink it takes them from. Pure but for the id.
 */

export const CLOUDEVENTS_BATCH = 'application/cloudevents-batch+json';

interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  subject?: string;
  datacontenttype: 'application/json';
  dataschema?: string;
  data: AuditEvent;
}

/** `io.registry-auth-proxy.audit.v1.token` / `….registry.manifest.get` etc. */
function cloudEventType(event: AuditEvent): string {
  return event.audit === 'token'
    ? 'io.registry-auth-proxy.audit.v1.token'
    : `io.registry-auth-proxy.audit.v1.registry.${event.action}`;
}

export function toCloudEvent(event: AuditEvent, source: string, id: string = randomUUID()): CloudEvent {
  const subject =
    event.audit === 'registry'
      ? `${event.repository}${event.digest ? `@${event.digest}` : event.reference ? `:${event.reference}` : ''}`
      : undefined;
  return {
    specversion: '1.0',
    id,
    source,
    type: cloudEventType(event),
    time: event.time,
    ...(subject ? { subject } : {}),
    datacontenttype: 'application/json',
    data: event,
  };
}
