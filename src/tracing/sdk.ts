import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { RequestTrace, SpanValue, TraceSpan, Tracing } from './types.js';

/**
 * The OpenTelemetry side of tracing/types.ts, loaded only when `tracing:` is configured (start.ts).
 * Spans are parented explicitly (no context manager, no AsyncLocalStorage hop per await), batched
 * in a bounded queue and exported over OTLP/HTTP off the serving path: a slow or dead collector
 * costs dropped spans and a log line, never a slower request.
 */

/** Where spans are POSTed: `<otlpEndpoint>/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT is read; a URL already naming it as it is. Pure. */
export function tracesURL(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

/** The path without its query: a `/token` query or an upload's `_state` are not for a collector. Pure. */
function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  return path.length > 512 ? `${path.slice(0, 512)}…` : path;
}

/** Says when exports start failing and when they work again, once each: not once per batch. */
function reportingExporter(inner: SpanExporter, url: string, logger: Logger): SpanExporter {
  let failing = false;
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      inner.export(spans, (result) => {
        const failed = result.code !== ExportResultCode.SUCCESS;
        if (failed && !failing)
          logger.warn(
            { collector: url, err: result.error?.message, spans: spans.length },
            'tracing: the collector did not take spans: they are dropped until it does',
          );
        else if (!failed && failing) logger.info({ collector: url }, 'tracing: the collector takes spans again');
        failing = failed;
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

/** A span ended once: the first end() counts (the upstream's also ends when the response closes). */
function stage(span: Span): TraceSpan {
  let ended = false;
  return {
    set: (key, value) => void span.setAttribute(key, value),
    end(outcome, failed) {
      if (ended) return;
      ended = true;
      if (outcome !== undefined) span.setAttribute('rap.outcome', outcome);
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome ? { message: outcome } : {}) });
      span.end();
    },
  };
}

function requestTrace(tracer: Tracer, propagator: W3CTraceContextPropagator, server: Span): RequestTrace {
  const parent: Context = trace.setSpan(ROOT_CONTEXT, server);
  return {
    set: (key: string, value: SpanValue) => void server.setAttribute(key, value),
    child: (name) => stage(tracer.startSpan(name, undefined, parent)),
    upstream(headers: IncomingHttpHeaders, res: ServerResponse, upstreamName: string) {
      const span = tracer.startSpan('upstream', { kind: SpanKind.CLIENT }, parent);
      if (upstreamName) span.setAttribute('rap.upstream', upstreamName);
      // The client's trace context is the proxy's parent, not the upstream's: replaced, never passed on.
      delete headers.traceparent;
      delete headers.tracestate;
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter);
      const exchange = stage(span);
      res.once('close', () => exchange.end());
      return exchange;
    },
  };
}

export function createTracing(config: TracingConfig, logger: Logger): Tracing {
  const url = tracesURL(config.otlpEndpoint);
  const exporter = new OTLPTraceExporter({ url, timeoutMillis: config.timeout });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    // A client's sampled flag decides for its trace; new traces are sampled at sampleRatio.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor(reportingExporter(exporter, url, logger), {
        maxQueueSize: config.queueSize,
        maxExportBatchSize: Math.min(512, config.queueSize),
        exportTimeoutMillis: config.timeout,
      }),
    ],
  });
  const tracer = provider.getTracer('registry-auth-proxy');
  const propagator = new W3CTraceContextPropagator();
  logger.info({ collector: url, sampleRatio: config.sampleRatio }, 'tracing: spans are exported over OTLP/HTTP');

  return {
    request(req: IncomingMessage, res: ServerResponse, route: string) {
      const method = req.method ?? 'GET';
      const client = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
      const server = tracer.startSpan(
        `${method} ${route}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            [ATTR_HTTP_REQUEST_METHOD]: method,
            [ATTR_URL_PATH]: pathOf(req.url),
            [ATTR_HTTP_ROUTE]: route,
          },
        },
        client,
      );
      res.once('close', () => {
        if (res.writableFinished) {
          server.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
          if (res.statusCode >= 500) server.setStatus({ code: SpanStatusCode.ERROR });
        } else server.setStatus({ code: SpanStatusCode.ERROR, message: 'aborted' });
        server.end();
      });
      return requestTrace(tracer, propagator, server);
    },
    async close() {
      // A dead collector must not hold shutdown past one export timeout.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((r) => (timer = setTimeout(r, config.timeout).unref()));
      await Promise.race([provider.shutdown().catch(() => undefined), late]);
      clearTimeout(timer);
    },
  };
}
