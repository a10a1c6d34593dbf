"""Structured logs for a whole process: one JSON object per line, with trace, event and stream ids.

Why this exists: logs of the API, the outbox relay and the projectors must be joinable with traces
and with the event stream (STYLE.md habit 10), whether they come from our code (structlog) or from
uvicorn, SQLAlchemy or aiokafka (stdlib logging). Both go through the same renderer here.

Usage::

    configure_logging("equipment")                      # in main.py, once, before anything logs
    log = structlog.get_logger(__name__)                # anywhere; cheap, nothing configured
    with event_context(event_id=e.event_id, stream_id=e.stream_id, unit_id=e.unit_id):
        log.info("item moved", to_location_id=str(e.to_location_id))
    # {"event": "item moved", "level": "info", "logger": "equipment.projector",
    #  "timestamp": "…Z", "service": "equipment", "trace_id": "…", "span_id": "…", "event_id": "…"}

Notes: run uvicorn with ``log_config=None`` so it does not replace this configuration. Nothing
happens at import time; `configure_logging` may be called again (tests do) and replaces its handler.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import date, datetime
from typing import Any, TextIO
from uuid import UUID

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

# Libraries that install handlers of their own; theirs are removed so each record is written once,
# by ours, through the root logger.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "aiokafka", "kafka")


_EVENT_KEYS = ("event_id", "stream_id", "unit_id")


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs, recognisable so a second call replaces it."""


def add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Add the current OpenTelemetry span's `trace_id` and `span_id`, when there is one."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # UUIDs, Decimals, enums: their text, never their repr


def configure_logging(
    service: str,
    *,
    level: str | int = "INFO",
    json: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging of this process to `stream` (stdout) as JSON lines."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_event_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        add_trace_context,
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger created at import keeps following a later configure_logging (tests
        # reconfigure); the cost is one bind per call, small beside the I/O of writing the line.
        cache_logger_on_first_use=False,
    )
    output = stream if stream is not None else sys.stdout
    rendering: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        rendering += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=_json_default),
        ]
    else:
        rendering.append(structlog.dev.ConsoleRenderer(colors=output.isatty()))
    handler = _Handler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # Records from stdlib loggers get the same fields; `extra={...}` becomes fields too.
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=rendering,
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        library_logger.propagate = True


def _event_fields(
    event_id: UUID | str | None, stream_id: UUID | str | None, unit_id: UUID | str | None
) -> dict[str, str]:
    fields = {"event_id": event_id, "stream_id": stream_id, "unit_id": unit_id}
    return {key: str(value) for key, value in fields.items() if value is not None}


def bind_event_context(
    *,
    event_id: UUID | str | None = None,
    stream_id: UUID | str | None = None,
    unit_id: UUID | str | None = None,
) -> None:
    """Make every later log line of this task carry the given event, stream and unit ids."""
    structlog.contextvars.bind_contextvars(**_event_fields(event_id, stream_id, unit_id))


def unbind_event_context() -> None:
    """Stop adding event, stream and unit ids to this task's log lines."""
    structlog.contextvars.unbind_contextvars(*_EVENT_KEYS)


# The event a projector is applying now: set once per event (one contextvar write); its ids are
# added to a log line only when one is written (`add_event_context`).
_CURRENT_EVENT: contextvars.ContextVar[tuple[Any, Any, Any] | None] = contextvars.ContextVar(
    "ictc_current_event", default=None
)


class _EventContext:
    """Make the event current on entry; on exit, restore the one current before."""

    __slots__ = ("_ids", "_token")

    def __init__(self, ids: tuple[Any, Any, Any]) -> None:
        self._ids = ids
        self._token: contextvars.Token[tuple[Any, Any, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _CURRENT_EVENT.set(self._ids)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CURRENT_EVENT.reset(self._token)


def event_context(
    *,
    event_id: UUID | str | None = None,
    stream_id: UUID | str | None = None,
    unit_id: UUID | str | None = None,
) -> _EventContext:
    """Carry the given ids in log lines inside the block, then restore what was current before.

    Inside the block these ids replace any bound with `bind_event_context`, and an id not given
    is left out, so a projector handling many events in one task never shows the previous
    event's id. Cheap on purpose: the projector enters it once per event (tens of thousands per
    second) and the ids are formatted only when a line is logged.
    """
    return _EventContext((event_id, stream_id, unit_id))


def add_event_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: put the current event's ids (if any) on the line."""
    ids = _CURRENT_EVENT.get()
    if ids is None:
        return event_dict
    for key, value in zip(_EVENT_KEYS, ids, strict=True):
        if value is None:
            event_dict.pop(key, None)
        else:
            event_dict[key] = str(value)
    return event_dict
