"""OpenTelemetry: one trace from a requester's approval to the payout in payments' ledger
(shared/tracing.py), recorded by an in-memory exporter; and nothing at all without OTEL_*."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.tracing import tracing_requested, use_span_processor
from tests.conftest import ROOT
from tests.fixtures.accounts import create_worker
from tests.fixtures.tasks import accepted, approve, cat_tasks, published_project, submit
from tests.shared.observed_stack import fresh_database, running_stack


@pytest.fixture(scope="module")
def private_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server) as url:
        yield url


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name"))


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> Iterator[ReadableSpan]:
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        yield span


def _tree(trace: list[ReadableSpan]) -> str:
    """The trace as an indented outline (for failure messages)."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in trace}
    for span in sorted(trace, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in children.get(parent, []):
            lines.append(f"{'  ' * depth}{span.name} [{span.kind.name} {_service(span)}]")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


async def test_an_approval_is_one_trace_from_tasks_to_the_ledger(private_url: str) -> None:
    exporter = InMemorySpanExporter()
    with use_span_processor(SimpleSpanProcessor(exporter)):
        async with running_stack(private_url) as stack:
            published = await published_project(
                stack.tasks, stack.workers, stack.payments, tasks=cat_tasks(1)
            )
            worker = await create_worker(stack.workers)
            work = await accepted(stack.tasks, worker, published.id)
            assignment_id = work["assignment_id"]
            await submit(stack.tasks, worker, assignment_id, {"label": "cat"})
            exporter.clear()
            resp = await approve(stack.tasks, published.requester, assignment_id)
            assert resp.status_code == 200, resp.text
            # The deliverer, woken after the commit, pays in the background.
            deadline = time.monotonic() + 10
            while not any(
                s.kind is SpanKind.SERVER and _service(s) == "payments"
                for s in exporter.get_finished_spans()
            ):
                assert time.monotonic() < deadline, "; ".join(
                    f"{s.name}|{s.kind}|{_service(s)}" for s in exporter.get_finished_spans()
                )
                await asyncio.sleep(0.05)

    spans = list(exporter.get_finished_spans())
    approvals = [
        s
        for s in spans
        if s.kind is SpanKind.SERVER
        and _service(s) == "tasks"
        and s.attributes.get("http.route") == "/v1/assignments/{assignment_id}/approve"
    ]
    assert len(approvals) == 1, [s.name for s in spans]
    root = approvals[0]
    trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}
    assert root.parent is None

    delivery = [s for s in trace if s.name == "outbox deliver"]
    outline = _tree(trace)
    assert len(delivery) == 1 and delivery[0].parent.span_id == root.context.span_id, outline
    calls = [
        s
        for s in trace
        if s.kind is SpanKind.CLIENT
        and s.parent is not None
        and s.parent.span_id == delivery[0].context.span_id
        and s.attributes.get("db.system") is None
    ]
    assert len(calls) == 1, outline
    payments_server = [
        s
        for s in trace
        if s.kind is SpanKind.SERVER
        and s.parent is not None
        and s.parent.span_id == calls[0].context.span_id
    ]
    assert len(payments_server) == 1, outline
    assert _service(payments_server[0]) == "payments"
    assert payments_server[0].attributes.get("http.route") == "/internal/payouts/batch"

    # Statements under both servers: the approval's own and the ledger posting's.
    statements = [s for s in trace if s.attributes.get("db.system") == "postgresql"]
    under_tasks = [s for s in statements if root in _ancestors(s, by_id)]
    under_payments = [s for s in statements if payments_server[0] in _ancestors(s, by_id)]
    assert under_tasks and under_payments
    assert any("ledger_entries" in str(s.attributes.get("db.statement")) for s in under_payments)
    # Parameters are never recorded (API key hashes, amounts): only the statement text.
    assert not any("db.statement.parameters" in s.attributes for s in statements)


def test_tracing_is_requested_only_by_the_standard_variables() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing_requested(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    )
    assert not tracing_requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


def test_without_otel_variables_no_tracing_code_is_loaded() -> None:
    """A service built without OTEL_* never imports the SDK, an exporter or an instrumentation:
    no tracing middleware, no patched driver. (FastAPI itself imports the OpenTelemetry API,
    a no-op until a provider is configured.)"""
    probe = (
        "import os, sys\n"
        "for k in list(os.environ):\n"
        "    if k.startswith('OTEL_'): del os.environ[k]\n"
        "from services.tasks.app import create_app\n"
        "from services.tasks.settings import Settings\n"
        "app = create_app(Settings(database_url='postgresql://x@localhost/x',"
        " internal_token='probe-token-0123456789abcdef'))\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'opentelemetry.exporter')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(heavy))\n"
        "assert not loaded, loaded\n"
        "assert not [m for m in app.user_middleware if 'OpenTelemetry' in m.cls.__name__]\n"
        "assert getattr(app.state, 'tracer_provider', None) is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_pass_for_requests_of_several_traces_starts_its_own_trace_linked_to_each() -> None:
    """The outbox pass's span: the child of the waking request when there is one trace, else a
    new trace with a link to every waking request (a batch carries many approvals)."""
    from opentelemetry.sdk.trace import TracerProvider

    from shared.tracing import span_triggered_by

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("approve one") as one:
        pass
    with tracer.start_as_current_span("approve two") as two:
        pass
    first, second = one.get_span_context(), two.get_span_context()

    with span_triggered_by(tracer, "outbox deliver", [first], {}):
        pass
    with span_triggered_by(tracer, "outbox deliver", [first, second], {}):
        pass
    with span_triggered_by(tracer, "outbox deliver", [], {}):
        pass
    single, several, none = [s for s in exporter.get_finished_spans() if s.name == "outbox deliver"]

    assert single.parent is not None and single.parent.span_id == first.span_id
    assert single.context.trace_id == first.trace_id
    assert several.parent is None
    assert several.context.trace_id not in (first.trace_id, second.trace_id)
    assert [link.context.span_id for link in several.links] == [first.span_id, second.span_id]
    assert none.parent is None and not none.links
    provider.shutdown()


async def test_spans_go_over_otlp_http_to_the_endpoint_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The environment's way, end to end: OTEL_EXPORTER_OTLP_ENDPOINT makes the app export its
    spans as OTLP/HTTP protobuf to `<endpoint>/v1/traces` (a stand-in collector here)."""
    import http.server
    import threading

    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from services.workers.app import create_app
    from services.workers.settings import Settings

    received: list[tuple[str, str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "workers-under-test")
        app = create_app(
            Settings(
                database_url=database_url,
                internal_token="probe-token-0123456789abcdef",
            )
        )
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            resp = await client.get("/v1/qualification-types/NOPE")
            assert resp.status_code in (401, 404)  # either way, a routed request
        assert app.state.tracer_provider.force_flush(10_000)
        app.state.tracer_provider.shutdown()
    finally:
        server.shutdown()
        AsyncPGInstrumentor().uninstrument()  # process-wide: the other tests run untraced

    assert received, "nothing was exported"
    spans = []
    for path, content_type, body in received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            attributes = resource_spans.resource.attributes
            assert {a.key: a.value.string_value for a in attributes}["service.name"] == (
                "workers-under-test"
            )
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    names = [span.name for span in spans]
    server_spans = [name for name in names if name.startswith("GET /")]
    assert server_spans == ["GET /v1/qualification-types/{type_id}"], server_spans
