/**
 * The process's tracing: a tracer provider and the W3C trace-context propagator registered with
 * `@opentelemetry/api`, which the runtime and the HTTP app trace through (runtime/tracing.ts). `system.ts` starts
 * it when OTEL_EXPORTER_OTLP_ENDPOINT is set (spans batched and sent over OTLP/HTTP); a test starts it with an
 * in-memory exporter. Never started, nothing is registered and tracing costs nothing (docs/ops.md, "Traces").
 *
 * @example
 * const tracing = otlpTracing("http://collector:4318", { "pitstop.run": "http,actors,reactors" });
 * // ... serve ...
 * await tracing.shutdown(); // exports what is still queued
 */
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
// sdk-trace-base's classes take their defaults from the OTEL_* variables (sampler, batch sizes), as operators expect.
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";

export interface TracingOptions {
  exporter: SpanExporter;
  /**
   * `batch` (the default): ended spans are queued and exported in the background, off the turns' path;
   * `simple`: each is exported as it ends (tests that read an in-memory exporter).
   */
  processor?: "batch" | "simple";
  /** Resource attributes besides `service.name` (`pitstop`): the process's role, its host id. */
  attributes?: Record<string, string>;
}

export interface Tracing {
  /** Unregisters the provider and the propagator (tracing is off again), then exports what is still queued. */
  shutdown(): Promise<void>;
}

/** Registers a tracer provider exporting to `exporter`, and the W3C propagator (`traceparent`/`tracestate`). */
export function startTracing(options: TracingOptions): Tracing {
  const processor =
    options.processor === "simple"
      ? new SimpleSpanProcessor(options.exporter)
      : new BatchSpanProcessor(options.exporter);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "pitstop", ...options.attributes }),
    spanProcessors: [processor],
  });
  // The API keeps the first registration and refuses others (it only says so through its diag logger).
  if (!trace.setGlobalTracerProvider(provider))
    throw new Error("a tracer provider is already registered in this process");
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    async shutdown() {
      trace.disable();
      propagation.disable();
      await provider.shutdown();
    },
  };
}

/**
 * Tracing exported over OTLP/HTTP to a collector at `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT: the base URL, traces
 * go to `<endpoint>/v1/traces` as the OTLP spec says for it). The exporter still reads the other OTEL_EXPORTER_OTLP_*
 * variables (headers, timeout, compression) itself.
 */
export function otlpTracing(endpoint: string, attributes: Record<string, string> = {}): Tracing {
  const url = `${endpoint.replace(/\/+$/, "")}/v1/traces`;
  return startTracing({ exporter: new OTLPTraceExporter({ url }), attributes });
}
