"""Events as versioned contracts: the frozen base, the type registry, upcasters and decoding.

Why this exists: events are the system's history and the language between services. Each event type
has a stable name that we choose (the class name, never a module path), a `schema_version`, and a
frozen pydantic payload. Changes are additive only; an older stored payload is upcast on read by
functions registered per (type, from_version). Golden JSON files (tests/unit/shared/golden/) pin the
wire format of every registered type.

Usage::

    class ItemMoved(Event):
        type: Literal["ItemMoved"] = "ItemMoved"
        item_id: UUID
        ...

    event = decode("ItemMoved", 1, {"item_id": ...})     # upcasts, validates, returns ItemMoved

Notes: a subclass registers itself when its module is imported; `shared.events` imports every
producer module so the registry is complete wherever the package is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_REGISTRY: dict[str, type[Event]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_NOT_PAYLOAD = {"type"}  # never mutated


class UnknownEventTypeError(LookupError):
    """A stored or received event names a type that no registered class has."""


class EventSchemaTooNewError(ValueError):
    """A payload claims a schema version newer than this code knows (deploy order problem)."""


class Event(BaseModel):
    """Base of every domain event: frozen, extra fields forbidden, self-describing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The current schema version of the subclass; bump it together with an upcaster.
    SCHEMA_VERSION: ClassVar[int] = 1

    type: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        name = field.default if field is not None else None
        if not isinstance(name, str) or name == "":
            return  # an intermediate base, not a concrete event
        if name != cls.__name__:
            raise TypeError(f"event {cls.__name__} must use type={cls.__name__!r}, not {name!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"event type {name!r} registered twice")
        _REGISTRY[name] = cls

    @property
    def schema_version(self) -> int:
        """Return the schema version this payload is written in (the class's current one)."""
        return self.SCHEMA_VERSION

    def payload(self) -> dict[str, Any]:
        """Return the JSON-ready payload (without `type`, which travels beside it)."""
        # `model_dump(mode="json", exclude=...)` without its wrapper: the same call to the same
        # serializer at half the cost (every append spells every event's payload).
        payload: dict[str, Any] = self.__pydantic_serializer__.to_python(
            self, mode="json", exclude=_NOT_PAYLOAD
        )
        return payload


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that upcasts a `from_version` payload of `event_type` by one version."""

    def decorator(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _UPCASTERS:
            raise TypeError(f"upcaster for {key} registered twice")
        _UPCASTERS[key] = fn
        return fn

    return decorator


def event_class(event_type: str) -> type[Event]:
    """Return the class registered for `event_type`."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventTypeError(event_type) from None


def registered_types() -> dict[str, type[Event]]:
    """Return a copy of the registry: event type name → class."""
    return dict(_REGISTRY)


def upcast(event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Bring `data` from `schema_version` up to the registered class's current version."""
    cls = event_class(event_type)
    if schema_version > cls.SCHEMA_VERSION:
        raise EventSchemaTooNewError(
            f"{event_type} v{schema_version} is newer than this code (v{cls.SCHEMA_VERSION})"
        )
    version = schema_version
    while version < cls.SCHEMA_VERSION:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise TypeError(f"no upcaster for {event_type} v{version}")
        data = step(data)
        version += 1
    return data


def decode(event_type: str, schema_version: int, data: Mapping[str, Any]) -> Event:
    """Return the typed event for a stored or received payload, upcasting older versions."""
    cls = event_class(event_type)
    # The current version (the common case) needs no upcasting; `data` is copied either way.
    if schema_version == cls.SCHEMA_VERSION:
        payload = dict(data)
    else:
        payload = upcast(event_type, schema_version, dict(data))
    payload["type"] = event_type
    # `model_validate` without its wrapper: projectors decode every event they read.
    event: Event = cls.__pydantic_validator__.validate_python(payload)
    return event
