"""OpenTelemetry tracing, on only when the standard `OTEL_*` variables ask for it.

`tracing_requested()` reads the environment and imports nothing; `build_app` calls the rest of
this module only when it is true, so a service without those variables never imports the
OpenTelemetry SDK and runs no instrumentation code on any request.

When on, each app gets its own TracerProvider (resource `service.name`: `OTEL_SERVICE_NAME`, else
the service's name) exporting over OTLP (HTTP/protobuf; the exporter reads the standard
`OTEL_EXPORTER_OTLP_*` variables itself), and three instrumentations:

- FastAPI: a server span per request, named after the route template, continuing the caller's
  trace from its `traceparent` header (W3C trace context);
- httpx: a client span per call on the service's one shared client, with `traceparent` injected,
  so a call from tasks to payments continues the same trace;
- asyncpg: a span per statement (the SQL text, never its parameters). This one patches asyncpg's
  Connection class, so it is process-wide: the first app's provider records them.

Payouts travel through the outbox, after the approving request has answered: the deliverer's
pass runs as a child of the request that woke it (one trace from the approval to payments'
ledger), with links to every other request whose messages it carries (docs/architecture.md,
"Traces").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from httpx import AsyncClient
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import SpanContext, Tracer

_NOT_TRACED_PATHS = "/metrics,/healthz,/readyz"
_override_processor: list[SpanProcessor] = []


def tracing_requested(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the standard variables ask for traces: an OTLP endpoint, or a traces exporter
    other than "none" (and the SDK not disabled)."""
    if _override_processor:
        return True
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


@contextlib.contextmanager
def use_span_processor(processor: SpanProcessor) -> Iterator[None]:
    """Apps built inside the block trace into `processor` (tests: an in-memory exporter) instead
    of the exporter the environment names. Undoes the process-wide asyncpg patch on exit."""
    _override_processor.append(processor)
    try:
        yield
    finally:
        _override_processor.remove(processor)
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().uninstrument()


def _span_processor() -> SpanProcessor:
    if _override_processor:
        return _override_processor[-1]
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporters = [
        name.strip().lower()
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    ]
    if exporters == ["console"]:
        return BatchSpanProcessor(ConsoleSpanExporter())
    # "otlp" (the default). Over HTTP/protobuf, whatever OTEL_EXPORTER_OTLP_PROTOCOL says: the
    # gRPC exporter is not a dependency (collectors take both on 4318 and 4317).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter())


def make_tracer_provider(service: str) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins; else the service.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_span_processor())
    return provider


def instrument_app(app: FastAPI, service: str) -> None:
    """Trace `app`'s requests and (through the provider kept in `app.state.tracer_provider`,
    which the lifespan hands to `instrument_http_client`) its calls to peers and Postgres."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = make_tracer_provider(service)
    app.state.tracer_provider = provider
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=_NOT_TRACED_PATHS,
        exclude_spans=["receive", "send"],
    )
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def instrument_http_client(client: AsyncClient, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def tracer_of(app: FastAPI) -> Tracer | None:
    """The app's tracer, or None when tracing is off (callers then skip all span work)."""
    provider = getattr(app.state, "tracer_provider", None)
    return None if provider is None else provider.get_tracer("marketplace")


def current_span_context() -> SpanContext | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


@contextlib.contextmanager
def span_triggered_by(
    tracer: Tracer, name: str, triggers: Sequence[SpanContext], attributes: dict[str, Any]
) -> Iterator[None]:
    """A span for work done on behalf of earlier requests (`triggers`): the child of the one
    trace they all belong to, or, when they come from several traces (or none), a new trace,
    linked to each of them."""
    from opentelemetry import trace
    from opentelemetry.trace import Link

    parent = None
    if triggers and len({t.trace_id for t in triggers}) == 1:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(triggers[0]))
    links = [Link(t) for t in triggers]
    with tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes):
        yield
