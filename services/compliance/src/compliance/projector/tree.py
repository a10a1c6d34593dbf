"""The unit directory of the compliance projection: units, their status and place in the tree.

Why this exists: reports filter and count by region and directorate, which are derived from the
whole tree (`place`); registrations arrive by the thousand in a rebuild, so they are inserted as
one multi-row statement per batch (`register_units`) and the tree is recomputed once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from compliance.projector.rows import columns_of, execute_rows, insert_rows
from compliance.views import UNITS_PART, change_marks_view, units_view
from shared.events.units import (
    UnitAbolished,
    UnitDetailsChanged,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitSuspended,
)

MAX_DEPTH = 64

_UNIT_COLUMNS = (
    "unit_id", "parent_id", "name", "unit_type", "mm_id", "email", "is_holding_node", "status",
    "registered_on",
)  # fmt: skip
_REGISTER_UNITS = insert_rows(units_view, _UNIT_COLUMNS).on_conflict_do_nothing(
    index_elements=[units_view.c.unit_id]
)
_mark = insert(change_marks_view).values(
    part=bindparam("part", type_=String()), token=func.gen_random_uuid()
)
_RENEW_MARK = _mark.on_conflict_do_update(
    index_elements=[change_marks_view.c.part], set_={"token": _mark.excluded.token}
)


async def renew_mark(session: AsyncSession, part: str) -> None:
    """Record that this batch changed `part` of the projection (readers drop what they kept)."""
    await session.execute(_RENEW_MARK, {"part": part})


async def renew_units_mark(session: AsyncSession) -> None:
    """Record that this batch changed the unit directory (readers drop what they kept of it)."""
    await renew_mark(session, UNITS_PART)


async def register_units(session: AsyncSession, events: Sequence[UnitRegistered]) -> None:
    """Insert the registered units (the first registration of a code wins), one statement."""
    seen: dict[str, UnitRegistered] = {}
    for event in events:
        seen.setdefault(event.unit_id, event)
    if not seen:
        return
    await execute_rows(
        session,
        _REGISTER_UNITS,
        columns_of(
            [
                {
                    "unit_id": e.unit_id,
                    "parent_id": e.parent_id,
                    "name": e.name,
                    "unit_type": e.unit_type,
                    "mm_id": e.mm_id,
                    "email": e.email or None,
                    "is_holding_node": e.is_holding_node,
                    "status": "active",
                    "registered_on": e.registered_on,
                }
                for e in seen.values()
            ],
            _UNIT_COLUMNS,
        ),
    )


async def apply_tree_event(
    event: UnitRenamed | UnitReparented | UnitMerged, session: AsyncSession
) -> None:
    """Apply a change of a unit's name, parent or merger (the tree is refreshed after)."""
    match event:
        case UnitRenamed():
            await _set_unit(session, event.unit_id, name=event.name)
        case UnitReparented():
            await _set_unit(session, event.unit_id, parent_id=event.to_parent_id)
        case UnitMerged():
            await _set_unit(
                session,
                event.unit_id,
                status="merged",
                merged_into=event.into_unit_id,
                left_scope_on=event.merged_on,
            )


async def apply_unit_status(
    event: UnitDetailsChanged | UnitSuspended | UnitAbolished | UnitReactivated,
    session: AsyncSession,
) -> None:
    """Apply a change of a unit's status or details."""
    match event:
        case UnitSuspended():
            await _set_unit(
                session, event.unit_id, status="suspended", left_scope_on=event.suspended_on
            )
        case UnitAbolished():
            await _set_unit(
                session, event.unit_id, status="abolished", left_scope_on=event.abolished_on
            )
        case UnitReactivated():
            await _set_unit(session, event.unit_id, status="active", left_scope_on=None)
        case UnitDetailsChanged():
            await _apply_details(event, session)


async def _apply_details(event: UnitDetailsChanged, session: AsyncSession) -> None:
    values: dict[str, Any] = {}
    if event.unit_type is not None:
        values["unit_type"] = event.unit_type
    if event.mm_id is not None:
        values["mm_id"] = event.mm_id or None
    if event.email is not None:
        values["email"] = event.email or None
    if values:
        await _set_unit(session, event.unit_id, **values)


async def _set_unit(session: AsyncSession, unit_id: str, **values: Any) -> None:
    await session.execute(
        update(units_view).where(units_view.c.unit_id == unit_id).values(**values)
    )


@dataclass(slots=True)
class _Node:
    parent_id: str | None
    merged_into: str | None
    is_holding_node: bool
    name: str


@dataclass(frozen=True, slots=True)
class _Placement:
    is_administrative: bool
    region_id: str | None
    region_name: str | None
    directorate_id: str | None
    directorate_name: str | None


def _step_up(nodes: dict[str, _Node], unit_id: str | None) -> str | None:
    """Return the unit that stands for `unit_id` in the tree: itself, or what it merged into."""
    seen = 0
    while unit_id is not None and seen < MAX_DEPTH:
        node = nodes.get(unit_id)
        if node is None or node.merged_into is None:
            return unit_id
        unit_id = node.merged_into
        seen += 1
    return unit_id


def place(nodes: dict[str, _Node], unit_id: str) -> _Placement:
    """Return where a unit sits: administrative or not, and its region and directorate.

    The tree rule: the root (no parent), its children (the regional directorates, and holding
    nodes) and the children of regional directorates (the directorates) are administrative.
    Units below a holding node have no region or directorate. A chain that reaches a unit not
    projected yet leaves the unit unplaced until it arrives.
    """
    chain: list[str] = []
    current = _step_up(nodes, nodes[unit_id].parent_id)
    while current is not None and len(chain) < MAX_DEPTH:
        node = nodes.get(current)
        if node is None:
            return _Placement(False, None, None, None, None)  # an ancestor not projected yet
        chain.append(current)
        current = _step_up(nodes, node.parent_id)
    depth = len(chain)  # chain = [parent, grandparent, ..., root]
    if depth <= 1:
        return _Placement(True, None, None, None, None)
    region = chain[-2]
    if nodes[region].is_holding_node:
        return _Placement(False, None, None, None, None)
    if depth == 2:  # noqa: PLR2004  (a child of a regional directorate: a directorate)
        return _Placement(True, region, nodes[region].name, None, None)
    directorate = chain[-3]
    return _Placement(False, region, nodes[region].name, directorate, nodes[directorate].name)


async def refresh_tree(session: AsyncSession) -> None:
    """Recompute every unit's placement from the whole tree; write only the rows that changed."""
    unit = units_view.c
    rows = (
        await session.execute(
            select(
                unit.unit_id,
                unit.parent_id,
                unit.merged_into,
                unit.is_holding_node,
                unit.name,
                unit.is_administrative,
                unit.region_id,
                unit.region_name,
                unit.directorate_id,
                unit.directorate_name,
            )
        )
    ).all()
    nodes = {r.unit_id: _Node(r.parent_id, r.merged_into, r.is_holding_node, r.name) for r in rows}
    changed: list[dict[str, Any]] = []
    for row in rows:
        placement = place(nodes, row.unit_id)
        stored = _Placement(
            row.is_administrative,
            row.region_id,
            row.region_name,
            row.directorate_id,
            row.directorate_name,
        )
        if placement != stored:
            changed.append(
                {
                    "key": row.unit_id,
                    "is_administrative": placement.is_administrative,
                    "region_id": placement.region_id,
                    "region_name": placement.region_name,
                    "directorate_id": placement.directorate_id,
                    "directorate_name": placement.directorate_name,
                }
            )
    if changed:
        await session.execute(
            update(units_view)
            .where(units_view.c.unit_id == bindparam("key"))
            .values(
                is_administrative=bindparam("is_administrative"),
                region_id=bindparam("region_id"),
                region_name=bindparam("region_name"),
                directorate_id=bindparam("directorate_id"),
                directorate_name=bindparam("directorate_name"),
            )
            .execution_options(synchronize_session=False),
            changed,
        )


__all__ = ["MAX_DEPTH", "apply_tree_event", "apply_unit_status", "place", "refresh_tree",
           "register_units"]  # fmt: skip
