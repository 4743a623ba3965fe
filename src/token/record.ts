import type { IncomingMessage } from 'node:http';
import type { Auditor } from '../audit/auditor.js';
import type { Metrics } from '../http/metrics.js';
import { requestState } from '../http/request-state.js';
import type { Logger } from '../log.js';
import { decisionLabels, decisionRecord, tokenEvent, type TokenOutcome } from './respond.js';

/** What the decision log adds to a record: the service, the policy digest, request.upstream. */
export interface DecisionLogContext {
  service: string;
  policy: string;
  upstreamOf(repository: string): string;
}

/** The outcome's one audit event, its decision-log record (a policy decision, when the log is on) and its metrics. */
export function record(
  outcome: TokenOutcome,
  req: IncomingMessage,
  clientIP: string,
  deps: { logger: Logger; metrics?: Metrics; auditor: Auditor; decisions?: DecisionLogContext },
): void {
  const { logger, metrics, auditor } = deps;
  const at = {
    clientIP,
    time: new Date().toISOString(),
    requestId: requestState(req).requestId,
    claims: auditor.claims,
  };
  const event = () => tokenEvent(outcome, at);
  if (outcome.kind === 'refused' && outcome.limited) {
    const { bucket, repeat } = outcome.limited;
    metrics?.rateLimited.inc({ scope: bucket });
    // One audit event when a bucket starts refusing; the rest of a flood would drown the log.
    if (repeat) logger.debug({ clientIP, bucket, issuer: outcome.who?.issuerName }, 'token request rate-limited again');
    else auditor.emit(event());
    return;
  }
  auditor.emit(event());
  if (outcome.kind === 'granted') {
    for (const w of outcome.grant.wouldDeny) auditor.wouldDeny(w.rule);
    if (deps.decisions) auditor.logDecision?.(decisionRecord(outcome, { ...at, ...deps.decisions }));
  }
  metrics?.tokenDecisions.inc(decisionLabels(outcome));
}
