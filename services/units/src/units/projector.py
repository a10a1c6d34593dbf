"""Fold `units.events` into the units read models (`units.views`): projection `units.read-model`.

Why this exists: the API's queries read tables, never the event store (ARCHITECTURE.md §4). The
kernel's `ProjectorRunner` calls `apply` once per event (or `apply_batch` per batch) and commits the
changes with its offsets in one transaction.

Notes:
- Each unit row keeps the stream version and position it last applied: updates of the unit carry
  `version < :v`, so an event applied twice changes nothing, and the API answers the version as the
  ETag and waits on the position for read-your-writes.
- Units and grants arrive on different partitions, and so may units of one tree: a unit registered
  under a parent that was merged meanwhile hangs under the absorbing unit as soon as both are
  projected, in whichever order they come.
- `apply_batch` inserts runs of registrations and template locations (a bulk import's shape) with
  one multi-row statement each; any other event is applied on its own, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.envelope import RecordedEvent
from shared.events.units import (
    LocationAdded,
    LocationRenamed,
    LocationRetired,
    LocationTransferred,
    UnitAbolished,
    UnitDetailsChanged,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitServingStarted,
    UnitServingStopped,
    UnitSuspended,
)
from units.domain import DETAIL_FIELDS
from units.views import locations_view, metadata, serving_view, units_view

PROJECTION = "units.read-model"

__all__ = ["PROJECTION", "apply", "apply_batch", "metadata"]


def _registered_row(recorded: RecordedEvent, event: UnitRegistered) -> dict[str, Any]:
    return {
        "unit_id": event.unit_id,
        "parent_id": event.parent_id,
        "effective_parent_id": event.parent_id,
        "name": event.name,
        "unit_type": event.unit_type,
        "is_holding_node": event.is_holding_node,
        "status": "active",
        "merged_into": None,
        "registered_on": event.registered_on,
        "closed_on": None,
        "version": recorded.version,
        "position": recorded.position,
        **{name: getattr(event, name) for name in DETAIL_FIELDS},
    }


def _location_row(event: LocationAdded) -> dict[str, Any]:
    return {
        "location_id": event.location_id,
        "unit_id": event.unit_id,
        "origin_unit_id": event.unit_id,
        "name": event.name,
        "kind": event.kind.value,
        "is_retired": False,
        "is_from_template": event.is_from_template,
        "added_on": event.added_on,
        "retired_on": None,
    }


async def _insert_units(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(
        insert(units_view).on_conflict_do_nothing(index_elements=[units_view.c.unit_id]), rows
    )
    # A parent merged before its child's registration was projected: hang the child under the
    # absorbing unit.
    parent = units_view.alias("parent")
    await session.execute(
        update(units_view)
        .where(
            units_view.c.unit_id.in_([row["unit_id"] for row in rows]),
            parent.c.unit_id == units_view.c.effective_parent_id,
            parent.c.merged_into.is_not(None),
        )
        .values(effective_parent_id=parent.c.merged_into)
    )


async def _insert_locations(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(
        insert(locations_view).on_conflict_do_nothing(
            index_elements=[locations_view.c.location_id]
        ),
        rows,
    )


async def _touch(session: AsyncSession, recorded: RecordedEvent, **values: Any) -> bool:
    """Record that the unit's stream reached this event (with `values`); False if already had."""
    result = await session.execute(
        update(units_view)
        .where(
            units_view.c.unit_id == recorded.stream_id,
            units_view.c.version < recorded.version,
        )
        .values(version=recorded.version, position=recorded.position, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


async def _effective_parent(session: AsyncSession, parent_id: str) -> str:
    merged_into = await session.scalar(
        select(units_view.c.merged_into).where(units_view.c.unit_id == parent_id)
    )
    return merged_into or parent_id


async def apply(recorded: RecordedEvent, session: AsyncSession) -> None:  # noqa: PLR0912  (one case per event type)
    """Fold one event into the read models; applying it twice changes nothing."""
    event = recorded.event()
    match event:
        case UnitRegistered():
            await _insert_units(session, [_registered_row(recorded, event)])
        case UnitRenamed():
            await _touch(session, recorded, name=event.name)
        case UnitDetailsChanged():
            changes: dict[str, Any] = {
                name: value or None
                for name in DETAIL_FIELDS
                if (value := getattr(event, name)) is not None
            }
            if event.unit_type is not None:
                changes["unit_type"] = event.unit_type
            await _touch(session, recorded, **changes)
        case UnitReparented():
            await _touch(
                session,
                recorded,
                parent_id=event.to_parent_id,
                effective_parent_id=await _effective_parent(session, event.to_parent_id),
            )
        case UnitSuspended():
            await _touch(session, recorded, status="suspended")
        case UnitReactivated():
            await _touch(session, recorded, status="active")
        case UnitAbolished():
            await _touch(session, recorded, status="abolished", closed_on=event.abolished_on)
        case UnitMerged():
            await _merge(session, recorded, event)
        case LocationAdded():
            await _touch(session, recorded)
            await _insert_locations(session, [_location_row(event)])
        case LocationRenamed():
            await _touch(session, recorded)
            await _update_location(session, event.location_id, name=event.name)
        case LocationRetired():
            await _touch(session, recorded)
            await _update_location(
                session, event.location_id, is_retired=True, retired_on=event.retired_on
            )
        case LocationTransferred():
            await _touch(session, recorded)
            await _update_location(session, event.location_id, unit_id=event.unit_id)
        case UnitServingStarted():
            await _touch(session, recorded)
            await session.execute(
                insert(serving_view)
                .values(
                    unit_id=event.unit_id,
                    served_unit_id=event.served_unit_id,
                    started_on=event.started_on,
                )
                .on_conflict_do_nothing()
            )
        case UnitServingStopped():
            await _touch(session, recorded)
            await session.execute(
                serving_view.delete().where(
                    serving_view.c.unit_id == event.unit_id,
                    serving_view.c.served_unit_id == event.served_unit_id,
                )
            )
        case _:
            pass  # grants are folded by the kernel's authz projection


async def _merge(session: AsyncSession, recorded: RecordedEvent, event: UnitMerged) -> None:
    merged_on: date = event.merged_on
    await _touch(
        session, recorded, status="merged", merged_into=event.into_unit_id, closed_on=merged_on
    )
    # Units under the merged unit now hang under the absorbing one (as shared.authz sees them).
    await session.execute(
        update(units_view)
        .where(units_view.c.effective_parent_id == event.unit_id)
        .values(effective_parent_id=event.into_unit_id)
    )
    # A support unit that merged serves no one any more; the absorbing unit's own service is
    # decided anew.
    await session.execute(serving_view.delete().where(serving_view.c.unit_id == event.unit_id))


async def _update_location(session: AsyncSession, location_id: str, **values: Any) -> None:
    await session.execute(
        update(locations_view).where(locations_view.c.location_id == location_id).values(**values)
    )


async def apply_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Fold a batch: runs of registrations and added locations as multi-row inserts."""
    units: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    touched: dict[str, RecordedEvent] = {}

    async def flush() -> None:
        if units:
            await _insert_units(session, units)
        for recorded in touched.values():
            await _touch(session, recorded)
        if added:
            await _insert_locations(session, added)
        units.clear()
        added.clear()
        touched.clear()

    for recorded in events:
        event = recorded.event()
        if isinstance(event, UnitRegistered):
            units.append(_registered_row(recorded, event))
        elif isinstance(event, LocationAdded):
            added.append(_location_row(event))
            touched[recorded.stream_id] = recorded  # the stream's newest applied event
        else:
            await flush()
            await apply(recorded, session)
    await flush()
