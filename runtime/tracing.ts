/**
 * Traces: W3C trace context (`traceparent` / `tracestate`) in the records' Kafka headers, through
 * `@opentelemetry/api` only. A turn or a reactor's event runs in a span whose parent is what its record carries;
 * the records it writes carry that span. The process registers a tracer provider and the W3C propagator
 * (ops/tracing.ts); without one `activeTracer()` answers undefined and nothing else here is called: no context
 * extracted, no span or attribute object made (turns run thousands a second).
 *
 * Spans are passed explicitly rather than through the API's active context: a turn's commit and a reactor's event
 * run inside a batch another turn started (group-commit.ts, reactor-batch.ts), where an active context would be
 * that other turn's.
 *
 * @example
 * const span = activeTracer()?.startSpan(`turn ${kind}`, { kind: SpanKind.CONSUMER }, parentContext(record.headers));
 * const headers = traceHeaders(span); // { traceparent: "00-<trace id>-<span id>-01" }, or undefined
 */
import {
  type Attributes,
  type Context,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";

export { type Span, SpanKind, SpanStatusCode };

const TRACER = "pitstop";

/**
 * The tracer of the registered provider; undefined when none is registered (tracing is off). Asked afresh each
 * time (a few property reads): the API's own no-op path would make a proxy tracer and a span object per call.
 */
export function activeTracer(): Tracer | undefined {
  const provider = trace.getTracerProvider();
  // The API hands out its proxy; without a delegate (nothing registered) it has no tracer to give.
  return provider instanceof ProxyTracerProvider
    ? provider.getDelegateTracer(TRACER)
    : provider.getTracer(TRACER);
}

const HEADERS_GETTER: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/** The context a record's headers (or a request's) carry: the root of a new trace when they carry none. */
export function parentContext(headers: Record<string, string> | Headers): Context {
  return headers instanceof Headers
    ? propagation.extract(ROOT_CONTEXT, headers, HEADERS_GETTER)
    : propagation.extract(ROOT_CONTEXT, headers);
}

/** A child of `parent` (call it only with one: `span && childSpan(span, ...)` makes nothing when tracing is off). */
export function childSpan(parent: Span, name: string, attributes?: Attributes): Span | undefined {
  return activeTracer()?.startSpan(
    name,
    { kind: SpanKind.INTERNAL, attributes },
    trace.setSpan(ROOT_CONTEXT, parent),
  );
}

/** The headers naming `span` as the parent of what a record causes; undefined without a span. */
export function traceHeaders(span: Span | undefined): Record<string, string> | undefined {
  if (!span) return undefined;
  const headers: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), headers);
  return headers;
}

/** The span's trace id, for logs and status frames; undefined without a span. */
export function traceIdOf(span: Span | undefined): string | undefined {
  return span?.spanContext().traceId;
}

/** Ends the span; failed (with the error's class and message) when `error` is given. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (!span) return;
  if (error !== undefined) failSpan(span, error);
  span.end();
}

/** Marks the span failed without ending it. */
export function failSpan(span: Span | undefined, error: unknown): void {
  if (!span) return;
  const e = error instanceof Error ? error : new Error(String(error));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: `${e.name}: ${e.message}` });
}

/** The spans of one send of records to `topic`, one per record that carries a trace. */
export interface PublishTrace {
  /** Each record's headers, its `traceparent` now naming its publish span (unchanged for an untraced record). */
  headers: Record<string, string>[];
  /** Ends the spans once the send is acknowledged (or failed, with `error`). */
  end(error?: unknown): void;
}

/**
 * Starts a `publish <topic>` span for each record whose headers carry a trace (its parent), and gives the headers
 * to send instead: the consumer's span then hangs off the publish. Undefined when tracing is off or no record is
 * traced (records with no trace, a fired timer's, start none: a span of their own would be a trace of its own).
 */
export function tracePublish(
  topic: string,
  records: readonly { headers?: Record<string, string> }[],
): PublishTrace | undefined {
  const tracer = activeTracer();
  if (!tracer || !records.some((r) => r.headers?.traceparent)) return undefined;
  const spans: Span[] = [];
  const headers = records.map((r) => {
    const given = r.headers ?? {};
    if (!given.traceparent) return given;
    const span = tracer.startSpan(
      `publish ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "send",
          "messaging.destination.name": topic,
        },
      },
      parentContext(given),
    );
    spans.push(span);
    return { ...given, ...traceHeaders(span) };
  });
  return {
    headers,
    end(error) {
      for (const span of spans) endSpan(span, error);
    },
  };
}
