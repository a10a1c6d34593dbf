"""The published language: event contracts, one module per producing service."""

from shared.events.base import (
    Event,
    EventSchemaTooNewError,
    UnknownEventTypeError,
    decode,
    event_class,
    register_upcaster,
    registered_types,
    upcast,
)

__all__ = [
    "Event",
    "EventSchemaTooNewError",
    "UnknownEventTypeError",
    "decode",
    "event_class",
    "register_upcaster",
    "registered_types",
    "upcast",
]
