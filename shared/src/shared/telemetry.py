"""OpenTelemetry for a whole process: the one module that touches the SDK, and trace propagation.

Why this exists: a trace must run from the HTTP request that appends an event, through the outbox
row and the Kafka record headers, into the projector that applies it (STYLE.md habit 10). The SDK
is set up here, once per process, by `main.py`; library code only calls
``opentelemetry.trace.get_tracer(__name__)`` and the propagation helpers below.

Usage::

    configure_telemetry("equipment")                    # in main.py, before building the app
    instrument_app(app); instrument_engine(engine)

    traceparent = current_traceparent()                  # stored with the event in the outbox
    producer.send(topic, value, headers=kafka_headers_with_trace(traceparent))
    with tracer.start_as_current_span("apply", context=context_from_traceparent(
            traceparent_from_headers(record.headers))): ...

Notes:
- A TracerProvider can be set only once per process. A second `configure_telemetry` returns the
  first provider and only adds an exporter it has not seen, so tests can share one in-memory
  exporter (``tests/otel.py``) with apps whose `main.py` also calls it.
- Without an explicit exporter, spans go to OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set and an
  OTLP exporter package is installed; otherwise they are recorded (trace ids for logs) but not sent.
- Metrics: a global MeterProvider with an in-memory reader, read by `collect_metrics()`, plus OTLP
  export under the same condition as spans.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

TRACEPARENT_HEADER = "traceparent"

_log = logging.getLogger(__name__)
# W3C only, whatever OTEL_PROPAGATORS says: the traceparent is stored with each event and must mean
# the same thing to every service that reads it, now and on replay.
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()


@dataclass
class _State:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    metric_reader: InMemoryMetricReader
    exporters: list[SpanExporter]


_state: _State | None = None
_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _otlp(module: str, class_name: str) -> Any:
    """Return an OTLP exporter from `module` if OTEL_EXPORTER_OTLP_ENDPOINT is set, else None."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    # Optional dependency, imported by name: an image without it still runs, without export.
    for protocol in ("http", "grpc"):
        try:
            exporter_module = importlib.import_module(
                f"opentelemetry.exporter.otlp.proto.{protocol}.{module}"
            )
        except ImportError:
            continue
        return getattr(exporter_module, class_name)()
    _log.warning(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set but no opentelemetry-exporter-otlp package is "
        "installed: %s are not exported",
        module.removesuffix("_exporter"),
    )
    return None


def configure_telemetry(
    service_name: str, *, exporter: SpanExporter | None = None, console: bool = False
) -> TracerProvider:
    """Set this process's tracer and meter providers once, and return the tracer provider."""
    global _state  # noqa: PLW0603  (the SDK's providers are process-wide by design)
    with _lock:
        if _state is None:
            resource = Resource.create({SERVICE_NAME: service_name})
            tracer_provider = TracerProvider(resource=resource)
            if exporter is None:
                otlp_spans = cast(
                    "SpanExporter | None", _otlp("trace_exporter", "OTLPSpanExporter")
                )
                if otlp_spans is not None:
                    tracer_provider.add_span_processor(BatchSpanProcessor(otlp_spans))
            metric_reader = InMemoryMetricReader()
            readers: list[MetricReader] = [metric_reader]
            otlp_metrics = cast(
                "MetricExporter | None", _otlp("metric_exporter", "OTLPMetricExporter")
            )
            if otlp_metrics is not None:
                readers.append(PeriodicExportingMetricReader(otlp_metrics))
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
            if trace.get_tracer_provider() is not tracer_provider:
                # set_tracer_provider only logs when another provider got there first; spans
                # would then silently miss our exporters.
                raise RuntimeError("another TracerProvider was set before configure_telemetry")
            _state = _State(tracer_provider, meter_provider, metric_reader, [])
        state = _state
        # Explicit and console exporters export on span end, synchronously: they serve tests and
        # debugging, where a span must be visible as soon as it ends.
        for added in (exporter, ConsoleSpanExporter() if console else None):
            if added is not None and not any(added is seen for seen in state.exporters):
                state.exporters.append(added)
                state.tracer_provider.add_span_processor(SimpleSpanProcessor(added))
        return state.tracer_provider


def instrument_app(app: FastAPI) -> FastAPI:
    """Trace every request `app` serves (a server span per request); call before it starts."""
    # FastAPIInstrumentor marks the app it wrapped; a second wrap would nest duplicate spans.
    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(app)
    return app


def instrument_engine(engine: Engine | AsyncEngine) -> None:
    """Trace every statement `engine` runs (a client span per statement, under the current span)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    # Imported here: the instrumentation patches nothing on import, but pulling it in only for
    # processes that have a database keeps the others lighter.
    from opentelemetry.instrumentation.dependencies import (  # noqa: PLC0415
        get_dependency_conflicts,
    )
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy.version import __version__  # noqa: PLC0415

    with _lock:
        if sync_engine in _instrumented_engines:
            return
        conflict = get_dependency_conflicts(SQLAlchemyInstrumentor().instrumentation_dependencies())
        if conflict is not None:
            # The instrumentor would log this and trace nothing (INFRA.md): fail instead.
            raise RuntimeError(f"SQLAlchemy cannot be traced: {conflict}")
        # SQLAlchemyInstrumentor().instrument(engine=…) works for the first engine of a process
        # only (the instrumentor is a singleton that refuses a second call), and each test app
        # builds its own engine; EngineTracer is what it attaches per engine.
        tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
        connections_usage = metrics.get_meter(
            "opentelemetry.instrumentation.sqlalchemy", __version__
        ).create_up_down_counter(
            name="db.client.connections.usage",
            unit="connections",
            description="The number of connections that are currently in the state described "
            "by the state attribute.",
        )
        EngineTracer(tracer, sync_engine, connections_usage)  # type: ignore[no-untyped-call]  # untyped upstream
        _instrumented_engines.add(sync_engine)


def current_traceparent() -> str | None:
    """Return the W3C traceparent of the active span, or None outside a recorded trace."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT_HEADER)


def context_from_traceparent(traceparent: str | None) -> Context:
    """Return a context whose parent is the span `traceparent` names (empty if none or invalid)."""
    # Never the current context: a projector applying an event belongs to the event's trace, not to
    # whatever span happens to be active in the consumer loop.
    if not traceparent:
        return Context()
    return _propagator.extract({TRACEPARENT_HEADER: traceparent}, context=Context())


def kafka_headers_with_trace(traceparent: str | None) -> list[tuple[str, bytes]]:
    """Return Kafka record headers that carry `traceparent` (none when there is no trace)."""
    if not traceparent:
        return []
    return [(TRACEPARENT_HEADER, traceparent.encode("ascii"))]


def traceparent_from_headers(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None,
) -> str | None:
    """Return the traceparent in Kafka record `headers`, or None if absent or not ASCII."""
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key.lower() == TRACEPARENT_HEADER and value:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def meter(name: str) -> metrics.Meter:
    """Return the meter `name` (for example ``__name__``) from the process's MeterProvider."""
    return metrics.get_meter(name)


@dataclass(frozen=True)
class MetricPoint:
    """One current value of a metric, with the attributes that distinguish it."""

    name: str
    attributes: Mapping[str, Any]
    value: float


def collect_metrics() -> list[MetricPoint]:
    """Collect every metric now (observable gauges call their callbacks) and return the points."""
    if _state is None:
        return []
    data = _state.metric_reader.get_metrics_data()
    points: list[MetricPoint] = []
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data_points: Sequence[Any] = metric.data.data_points
                points.extend(
                    MetricPoint(metric.name, dict(point.attributes or {}), point.value)
                    for point in data_points
                    if isinstance(point, NumberDataPoint)
                )
    return points
