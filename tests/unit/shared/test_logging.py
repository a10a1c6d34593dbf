"""JSON log lines from structlog and stdlib loggers, with trace and event ids."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from opentelemetry import trace

from shared.logging import (
    bind_event_context,
    configure_logging,
    event_context,
    unbind_event_context,
)
from tests.otel import span_exporter

tracer = trace.get_tracer(__name__)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Configure logging into a buffer; put the process's logging back as it was afterwards."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    uvicorn = logging.getLogger("uvicorn.error")
    saved_uvicorn = (uvicorn.handlers[:], uvicorn.propagate)
    saved_structlog = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("equipment", stream=buffer)
    yield buffer
    root.handlers[:], root.level = saved_root
    uvicorn.handlers[:], uvicorn.propagate = saved_uvicorn
    structlog.configure(**saved_structlog)
    structlog.contextvars.clear_contextvars()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_log_line_is_one_json_object_with_the_standard_fields(output: io.StringIO) -> None:
    structlog.get_logger("equipment.handlers").info("item moved", quantity=3)
    (line,) = lines(output)
    assert line["event"] == "item moved"
    assert line["quantity"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "equipment.handlers"
    assert line["service"] == "equipment"
    timestamp = datetime.fromisoformat(line["timestamp"])
    assert timestamp.utcoffset() is not None
    assert abs((datetime.now(UTC) - timestamp).total_seconds()) < 60
    assert "trace_id" not in line


def test_a_log_line_inside_a_span_carries_its_trace_and_span_ids(output: io.StringIO) -> None:
    span_exporter()  # a real provider: the API's no-op tracer makes invalid spans
    with tracer.start_as_current_span("handler") as span:
        structlog.get_logger("equipment.handlers").info("item moved")
        logging.getLogger("sqlalchemy.engine").warning("slow query %s ms", 812)
    context = span.get_span_context()
    ours, foreign = lines(output)
    for line in (ours, foreign):
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"
    assert foreign["event"] == "slow query 812 ms"
    assert foreign["logger"] == "sqlalchemy.engine"
    assert foreign["level"] == "warning"
    assert foreign["service"] == "equipment"


def test_library_handlers_are_replaced_so_each_record_is_written_once() -> None:
    uvicorn = logging.getLogger("uvicorn.error")
    own = logging.StreamHandler(io.StringIO())
    uvicorn.addHandler(own)
    uvicorn.propagate = False
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    buffer = io.StringIO()
    try:
        configure_logging("units", stream=buffer)
        configure_logging("units", stream=buffer)  # again: still one handler of ours
        uvicorn.info("Application startup complete.")
        (line,) = lines(buffer)
        assert line["logger"] == "uvicorn.error"
        assert line["service"] == "units"
        assert own not in uvicorn.handlers
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        structlog.configure(**saved[2])
        uvicorn.removeHandler(own)
        uvicorn.propagate = True


def test_event_ids_are_carried_until_unbound(output: io.StringIO) -> None:
    log = structlog.get_logger("compliance.projector")
    event_id, stream_id = uuid.uuid4(), uuid.uuid4()
    bind_event_context(event_id=event_id, stream_id=stream_id, unit_id="0551040")
    log.info("applied")
    unbind_event_context()
    log.info("idle")
    applied, idle = lines(output)
    assert applied["event_id"] == str(event_id)
    assert applied["stream_id"] == str(stream_id)
    assert applied["unit_id"] == "0551040"
    assert not {"event_id", "stream_id", "unit_id"} & idle.keys()


def test_event_context_does_not_leak_ids_between_events(output: io.StringIO) -> None:
    log = structlog.get_logger("compliance.projector")
    bind_event_context(stream_id="outer")
    with event_context(event_id="e1", unit_id="u1"):
        log.info("first")
    with event_context(event_id="e2"):
        log.info("second")
    log.info("after")
    first, second, after = lines(output)
    assert (first["event_id"], first["unit_id"], "stream_id" in first) == ("e1", "u1", False)
    assert (second["event_id"], "unit_id" in second) == ("e2", False)
    assert after["stream_id"] == "outer"
    assert "event_id" not in after


def test_level_filters_both_kinds_of_logger(output: io.StringIO) -> None:
    configure_logging("equipment", level="WARNING", stream=output)
    structlog.get_logger("equipment").info("hidden")
    logging.getLogger("aiokafka").info("hidden too")
    structlog.get_logger("equipment").warning("shown")
    assert [line["event"] for line in lines(output)] == ["shown"]


def test_exceptions_are_rendered_into_the_json_line(output: io.StringIO) -> None:
    try:
        raise ValueError("bad unit code")
    except ValueError:
        structlog.get_logger("units").exception("rejected")
    (line,) = lines(output)
    assert "ValueError: bad unit code" in line["exception"]


def test_console_rendering_is_for_people(output: io.StringIO) -> None:
    configure_logging("equipment", json=False, stream=output)
    structlog.get_logger("equipment").info("item moved", quantity=3)
    text = output.getvalue()
    assert "item moved" in text
    assert "quantity=3" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
