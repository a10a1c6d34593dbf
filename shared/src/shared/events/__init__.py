"""The published language: event contracts, one module per producing service."""

import shared.events.compliance  # importing registers the compliance event types
import shared.events.equipment  # importing registers the equipment event types
import shared.events.units  # noqa: F401  (importing registers the units event types)
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
