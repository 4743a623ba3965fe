import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { AuditEvent } from './events.js';
import { appendJsonLines, createSink, type AuditSink, type JsonLines } from './sinks.js';

/** The audit stage both paths hand their events to: fan-out to the configured sinks. */
export interface Auditor {
  /** The identity claims events carry (config `audit.claims`). */
  readonly claims: readonly string[];
  /** Some sink is configured: without one, nothing gathers facts for events nobody receives. */
  readonly active: boolean;
  /** An event reaches the log stream (the stdout sink): it stands in for the request's access line. */
  readonly toLogStream: boolean;
  /** Never waits, never throws: a slow sink drops (and counts) rather than slow serving. */
  emit(event: AuditEvent): void;
  /** An `effect: audit` rule matched (it would have denied): counted per rule. */
  wouldDeny(rule: string): void;
  /**
   * Set when `audit.decisionLog` is: appends one /token decision record (policy/decision-log.ts, its
   * shape is the policy's business), never waiting (a full queue drops and counts).
   */
  logDecision?(record: object): void;
  close(): Promise<void>;
}

function auditMetrics(registry?: Registry) {
  const registers = registry ? [registry] : [];
  return {
    dropped: new Counter({
      name: 'rap_audit_dropped_total',
      help: 'Audit events a sink dropped: its queue was full (sink down or slow) or they were unsent at shutdown',
      labelNames: ['sink'] as const,
      registers,
    }),
    ruleMatches: new Counter({
      name: 'rap_audit_rule_matches_total',
      help: '`effect: audit` rules that matched a token request: what they would have denied (nothing was)',
      labelNames: ['rule'] as const,
      registers,
    }),
  };
}

export function createAuditor(
  config: Pick<Config, 'audit' | 'publicURL'>,
  logger: Logger,
  registry?: Registry,
): Auditor {
  const metrics = auditMetrics(registry);
  // A Config built by hand (tests, tools) may have no `audit:`: the default, the log stream.
  const audit = config.audit ?? { sinks: [{ type: 'stdout' }], claims: [] };
  const sinks: AuditSink[] = audit.sinks.map((s) =>
    createSink(s, { logger, source: config.publicURL, onDrop: (sink, n) => metrics.dropped.inc({ sink }, n) }),
  );
  for (const s of sinks) metrics.dropped.inc({ sink: s.name }, 0);
  const decisions = audit.decisionLog && decisionLog(audit.decisionLog, logger, metrics.dropped);
  return {
    claims: audit.claims,
    active: sinks.length > 0,
    toLogStream: audit.sinks.some((s) => s.type === 'stdout'),
    ...(decisions ? { logDecision: (record: object) => decisions.push(record) } : {}),
    emit(event) {
      for (const sink of sinks) {
        try {
          sink.write(event);
        } catch (err) {
          logger.error({ sink: sink.name, err: (err as Error).message }, 'audit sink failed');
        }
      }
    },
    wouldDeny: (rule) => metrics.ruleMatches.inc({ rule }),
    async close() {
      await Promise.all([...sinks.map((s) => s.close()), decisions?.close()]);
    },
  };
}

/** The decision log: the file sink's bounded, non-blocking append, its drops counted as `decisions:<path>`. */
function decisionLog(
  config: NonNullable<NonNullable<Config['audit']>['decisionLog']>,
  logger: Logger,
  dropped: Counter<'sink'>,
): JsonLines<object> {
  const sink = `decisions:${config.path}`;
  dropped.inc({ sink }, 0);
  return appendJsonLines<object>(config.path, config.queue, sink, {
    logger,
    onDrop: (n) => dropped.inc({ sink }, n),
  });
}

/** The stdout sink alone, for callers given no auditor (tests, tools): today's audit lines. */
export function logAuditor(logger: Logger): Auditor {
  return createAuditor({ audit: { sinks: [{ type: 'stdout' }], claims: [] }, publicURL: '' }, logger);
}
