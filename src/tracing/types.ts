import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

/**
 * What the two paths see of tracing: plain interfaces, no OpenTelemetry import, so a proxy
 * without `tracing:` never loads the SDK (start.ts) and its paths pay one `?.` per stage.
 * Attribute values are names, codes and counts: never a token, a password or an Authorization value.
 */

export type SpanValue = string | number | boolean;

/** One stage of a request (verify, policy, authorize, guards, upstream); ended once. */
export interface TraceSpan {
  set(key: string, value: SpanValue): void;
  /** Ends the span; `outcome` goes into `rap.outcome`, and `failed` marks it an error. */
  end(outcome?: string, failed?: boolean): void;
}

/** The server span of one request and the stages under it. */
export interface RequestTrace {
  set(key: string, value: SpanValue): void;
  /** A stage under the request's span. */
  child(name: string): TraceSpan;
  /**
   * The exchange with the upstream (a client span): its W3C `traceparent` replaces the client's in
   * `headers`, so the upstream continues the same trace; ended when the client's response closes
   * (its body streamed to the end, or cut).
   */
  upstream(headers: IncomingHttpHeaders, res: ServerResponse, upstreamName: string): TraceSpan;
}

export interface Tracing {
  /**
   * The request's server span, continued from the client's `traceparent` when it sends one, and
   * ended when the response closes with its status.
   */
  request(req: IncomingMessage, res: ServerResponse, route: string): RequestTrace;
  /** Exports what is queued (bounded by the export timeout) and stops. */
  close(): Promise<void>;
}
