"""Trace propagation across outbox and Kafka headers, and spans from FastAPI and SQLAlchemy."""

from __future__ import annotations

import os

import httpx
import pytest
import sqlalchemy
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import create_async_engine

from shared.telemetry import (
    collect_metrics,
    configure_telemetry,
    context_from_traceparent,
    current_traceparent,
    instrument_app,
    instrument_engine,
    kafka_headers_with_trace,
    meter,
    traceparent_from_headers,
)
from tests.otel import span_exporter

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01"

tracer = trace.get_tracer(__name__)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = span_exporter()
    exporter.clear()
    return exporter


def _traceparent_of(span: trace.Span | ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_span_started_under_a_traceparent_joins_that_trace(spans: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("apply", context=context_from_traceparent(TRACEPARENT)):
        pass
    (span,) = spans.get_finished_spans()
    assert span.context is not None
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == PARENT_SPAN_ID
    assert span.parent.is_remote


@pytest.mark.parametrize("traceparent", [None, "", "not-a-traceparent", "00-" + "0" * 32 + "-01"])
def test_missing_or_invalid_traceparent_starts_a_new_trace_not_the_current_one(
    spans: InMemorySpanExporter, traceparent: str | None
) -> None:
    with (
        tracer.start_as_current_span("consumer loop") as loop,
        tracer.start_as_current_span("apply", context=context_from_traceparent(traceparent)),
    ):
        pass
    apply, _ = spans.get_finished_spans()
    assert apply.parent is None
    assert apply.context is not None
    assert apply.context.trace_id != loop.get_span_context().trace_id


def test_current_traceparent_names_the_active_span(spans: InMemorySpanExporter) -> None:
    assert current_traceparent() is None
    with tracer.start_as_current_span("request") as span:
        assert current_traceparent() == _traceparent_of(span)
    assert current_traceparent() is None


def test_traceparent_survives_kafka_headers() -> None:
    headers = [("event-type", b"ItemMoved"), *kafka_headers_with_trace(TRACEPARENT)]
    assert traceparent_from_headers(headers) == TRACEPARENT
    assert traceparent_from_headers({"TraceParent": TRACEPARENT.encode()}) == TRACEPARENT
    assert kafka_headers_with_trace(None) == []
    assert traceparent_from_headers([("event-type", b"ItemMoved")]) is None
    assert traceparent_from_headers([("traceparent", b"\xff\xfe")]) is None
    assert traceparent_from_headers([("traceparent", None)]) is None
    assert traceparent_from_headers(None) is None


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/traceparent")
    async def traceparent() -> dict[str, str | None]:
        return {"traceparent": current_traceparent()}

    return app


async def _get(app: FastAPI, headers: dict[str, str] | None = None) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/traceparent", headers=headers)
    assert response.status_code == 200
    traceparent = response.json()["traceparent"]
    assert isinstance(traceparent, str)
    return traceparent


def _server_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]


async def test_request_has_a_server_span_and_the_handler_sees_its_trace(
    spans: InMemorySpanExporter,
) -> None:
    app = instrument_app(_app())
    seen = await _get(app)
    (server,) = _server_spans(spans)
    assert server.context is not None
    assert seen == _traceparent_of(server)
    assert server.attributes is not None
    assert server.attributes.get("http.route") == "/traceparent"


async def test_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    app = instrument_app(_app())
    seen = await _get(app, headers={"traceparent": TRACEPARENT})
    (server,) = _server_spans(spans)
    assert server.context is not None
    assert server.context.trace_id == TRACE_ID
    assert seen.split("-")[1] == f"{TRACE_ID:032x}"


async def test_instrumenting_an_app_twice_gives_one_server_span(
    spans: InMemorySpanExporter,
) -> None:
    app = instrument_app(instrument_app(_app()))
    await _get(app)
    assert len(_server_spans(spans)) == 1


def _statement_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]


def test_engine_statements_are_spans_under_the_current_span(spans: InMemorySpanExporter) -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    instrument_engine(engine)
    instrument_engine(engine)  # a second call must not double the spans
    with tracer.start_as_current_span("handler") as handler, engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    (statement,) = _statement_spans(spans)
    assert statement.parent is not None
    assert statement.parent.span_id == handler.get_span_context().span_id
    engine.dispose()


def test_each_engine_of_a_process_is_traced(spans: InMemorySpanExporter) -> None:
    engines = [sqlalchemy.create_engine("sqlite://") for _ in range(2)]
    for engine in engines:
        instrument_engine(engine)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    assert len(_statement_spans(spans)) == 2


@pytest.fixture
def async_pg_url() -> str:
    url = os.environ.get("TEST_PG_ADMIN_URL")
    if not url:
        pytest.skip(
            "TEST_PG_ADMIN_URL is not set: the async engine is not traced against PostgreSQL"
        )
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


async def test_async_engine_statements_are_spans(
    spans: InMemorySpanExporter, async_pg_url: str
) -> None:
    engine = create_async_engine(async_pg_url, connect_args={"connect_timeout": 5})
    instrument_engine(engine)
    try:
        async with engine.connect() as connection:
            await connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"TEST_PG_ADMIN_URL is set but PostgreSQL is unreachable: {error}")
    finally:
        await engine.dispose()
    assert any(
        (span.attributes or {}).get("db.system") == "postgresql" for span in _statement_spans(spans)
    )


def test_configuring_again_keeps_the_provider_and_adds_only_new_exporters(
    spans: InMemorySpanExporter,
) -> None:
    provider = trace.get_tracer_provider()
    extra = InMemorySpanExporter()
    assert configure_telemetry("equipment", exporter=extra) is provider
    assert configure_telemetry("equipment", exporter=extra) is provider
    assert configure_telemetry("units", exporter=spans) is provider
    with tracer.start_as_current_span("once"):
        pass
    assert len(spans.get_finished_spans()) == 1
    assert len(extra.get_finished_spans()) == 1
    extra.shutdown()


def test_observable_gauge_values_are_collected(spans: InMemorySpanExporter) -> None:
    backlog = {"units.events": 3}

    def observe(_: CallbackOptions) -> list[Observation]:
        return [Observation(size, {"topic": topic}) for topic, size in backlog.items()]

    meter(__name__).create_observable_gauge("test.outbox.backlog", callbacks=[observe])
    backlog["units.events"] = 7
    points = [point for point in collect_metrics() if point.name == "test.outbox.backlog"]
    assert [(point.attributes, point.value) for point in points] == [({"topic": "units.events"}, 7)]
