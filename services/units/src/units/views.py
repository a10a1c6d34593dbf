"""The units read models and the queries over them; plus history and the tree as of a date.

Why this exists: every query of the API reads tables folded by `units.projector` from
`units.events` (never the event store), except two that read the store by design: a unit's history
(the events themselves) and the tree *as it was* on a past date (folded from every event, page by
page, so memory grows with the number of units, never with the number of events).

Tables (in the units database, created by the units Alembic branch):
- `units_view`: one row per unit with its details, status, official parent and *effective* parent
  (the unit it merged into, else its parent; units under a merged unit hang under the absorbing
  one), and the stream version last applied (the ETag); `name_folded` is `ictc_fold(name)`, a
  stored generated column, for accent- and case-insensitive search.
- `unit_locations_view`: each location with the unit that holds it now (transferred on merge).
- `unit_serving_view`: which support unit serves which unit.
Grants are read from the kernel's `authz_*` tables, which the same worker folds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from shared import authz
from shared.db import NAMING_CONVENTION
from shared.events.envelope import RecordedEvent
from shared.events.units import (
    UnitAbolished,
    UnitDetailsChanged,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitRole,
    UnitSuspended,
)
from shared.eventstore import EventStore
from shared.greek import sql_like_patterns

metadata = MetaData(naming_convention=NAMING_CONVENTION)
MAX_DEPTH = 64

units_view = Table(
    "units_view",
    metadata,
    Column("unit_id", String(32), primary_key=True),
    Column("parent_id", String(32), nullable=True),
    Column("effective_parent_id", String(32), nullable=True),
    Column("name", Text, nullable=False),
    Column("name_folded", Text, Computed("ictc_fold(name)", persisted=True)),
    Column("unit_type", Text, nullable=False),
    Column("mm_id", Text, nullable=True),
    Column("municipality", Text, nullable=True),
    Column("address", Text, nullable=True),
    Column("postal_code", Text, nullable=True),
    Column("operation_shift", Text, nullable=True),
    Column("legal_character", Text, nullable=True),
    Column("orientation", Text, nullable=True),
    Column("phone", Text, nullable=True),
    Column("email", Text, nullable=True),
    Column("is_holding_node", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("merged_into", String(32), nullable=True),
    Column("registered_on", Date, nullable=False),
    Column("closed_on", Date, nullable=True),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)
Index("ix_units_view_effective_parent_id", units_view.c.effective_parent_id)
Index("ix_units_view_merged_into", units_view.c.merged_into)
Index("ix_units_view_mm_id", units_view.c.mm_id)
# Code prefix search (`unit_id LIKE '05%'`) needs pattern ops under any database collation.
Index(
    "ix_units_view_unit_id_pattern",
    units_view.c.unit_id,
    postgresql_ops={"unit_id": "varchar_pattern_ops"},
)

locations_view = Table(
    "unit_locations_view",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("unit_id", String(32), nullable=False),
    Column("origin_unit_id", String(32), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("is_retired", Boolean, nullable=False),
    Column("is_from_template", Boolean, nullable=False),
    Column("added_on", Date, nullable=False),
    Column("retired_on", Date, nullable=True),
)
Index("ix_unit_locations_view_unit_id", locations_view.c.unit_id)

serving_view = Table(
    "unit_serving_view",
    metadata,
    Column("unit_id", String(32), primary_key=True),
    Column("served_unit_id", String(32), primary_key=True),
    Column("started_on", Date, nullable=False),
)
Index("ix_unit_serving_view_served_unit_id", serving_view.c.served_unit_id)

UNIT_COLUMNS = [c for c in units_view.c if c.name not in ("name_folded", "position")]


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def get_unit(session: AsyncSession, unit_id: str) -> dict[str, Any] | None:
    """Return one unit's row, or None."""
    row = (
        await session.execute(select(*UNIT_COLUMNS).where(units_view.c.unit_id == unit_id))
    ).first()
    return _row(row) if row else None


async def children(
    session: AsyncSession, unit_id: str, *, include_closed: bool = False
) -> list[dict[str, Any]]:
    """Return the units hanging directly under `unit_id` (merged units' children included)."""
    query = select(*UNIT_COLUMNS).where(units_view.c.effective_parent_id == unit_id)
    if not include_closed:
        query = query.where(units_view.c.status.in_(("active", "suspended")))
    query = query.order_by(units_view.c.name_folded.collate("C"), units_view.c.unit_id)
    return [_row(r) for r in await session.execute(query)]


async def open_children(session: AsyncSession, unit_id: str) -> list[str]:
    """Return the ids of the open (active or suspended) units directly under `unit_id`."""
    return [row["unit_id"] for row in await children(session, unit_id)]


_ANCESTORS = text(
    """
WITH RECURSIVE up(unit_id, depth) AS (
    SELECT effective_parent_id, 1 FROM units_view WHERE unit_id = :unit_id
    UNION ALL
    SELECT u.effective_parent_id, up.depth + 1
    FROM up JOIN units_view u ON u.unit_id = up.unit_id
    WHERE u.effective_parent_id IS NOT NULL AND up.depth < :max_depth
)
SELECT v.unit_id, v.name, v.unit_type, v.status, up.depth
FROM up JOIN units_view v ON v.unit_id = up.unit_id
ORDER BY up.depth
"""
)


async def ancestors(session: AsyncSession, unit_id: str) -> list[dict[str, Any]]:
    """Return the unit's ancestors, parent first, up to the root."""
    rows = await session.execute(_ANCESTORS, {"unit_id": unit_id, "max_depth": MAX_DEPTH})
    return [_row(r) for r in rows]


# UNION (not UNION ALL) drops rows already reached, so bad data with a cycle cannot loop forever.
_SUBTREE_CTE = """
WITH RECURSIVE down(unit_id, depth) AS (
    SELECT CAST(:unit_id AS varchar(32)), 0
    UNION
    SELECT u.unit_id, d.depth + 1
    FROM down d JOIN units_view u ON u.effective_parent_id = d.unit_id
    WHERE d.depth < :max_depth AND u.unit_id <> CAST(:unit_id AS varchar(32))
)
"""
_SUBTREE_COUNTS = text(
    _SUBTREE_CTE + "SELECT v.unit_type, v.status, count(*) AS n FROM down"  # noqa: S608  (constant SQL; values are bound)
    " JOIN units_view v ON v.unit_id = down.unit_id WHERE down.depth > 0"
    " GROUP BY v.unit_type, v.status"
)
_SUBTREE_UNITS = text(
    _SUBTREE_CTE + "SELECT v.unit_id, v.name, v.unit_type, v.status, v.effective_parent_id,"  # noqa: S608  (constant SQL; values are bound)
    " down.depth FROM down JOIN units_view v ON v.unit_id = down.unit_id"
    ' WHERE down.depth > 0 ORDER BY down.depth, v.name_folded COLLATE "C", v.unit_id'
    " LIMIT :limit OFFSET :offset"
)


@dataclass(frozen=True, slots=True)
class SubtreeCounts:
    """How many units lie below a unit, by type and by status."""

    total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


async def subtree_counts(session: AsyncSession, unit_id: str) -> SubtreeCounts:
    """Count the units below `unit_id` (not itself): open ones by type, all by status."""
    rows = await session.execute(
        _SUBTREE_COUNTS,
        {"unit_id": unit_id, "max_depth": MAX_DEPTH},
    )
    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    total = 0
    for unit_type, status, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        total += count
        if status in ("active", "suspended"):
            by_type[unit_type] = by_type.get(unit_type, 0) + count
    return SubtreeCounts(total, dict(sorted(by_type.items())), dict(sorted(by_status.items())))


async def subtree_units(
    session: AsyncSession, unit_id: str, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Return a page of the units below `unit_id` with their depth, nearest levels first."""
    rows = await session.execute(
        _SUBTREE_UNITS,
        {"unit_id": unit_id, "max_depth": MAX_DEPTH, "limit": limit, "offset": offset},
    )
    return [_row(r) for r in rows]


async def search(
    session: AsyncSession,
    *,
    name: str | None = None,
    code_prefix: str | None = None,
    unit_type: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Find units by name (every word, ignoring accents and case), code prefix, type, status."""
    conditions: list[ColumnElement[bool]] = []
    if name:
        # Python's fold() of the query matches the SQL ictc_fold() of the stored name.
        conditions += [units_view.c.name_folded.like(p) for p in sql_like_patterns(name)]
    if code_prefix:
        escaped = code_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(units_view.c.unit_id.like(escaped + "%"))
    if unit_type:
        conditions.append(func.ictc_fold(units_view.c.unit_type) == func.ictc_fold(unit_type))
    if status:
        conditions.append(units_view.c.status == status)
    query = (
        select(*UNIT_COLUMNS)
        .where(and_(literal_column("true"), *conditions))
        .order_by(units_view.c.name_folded.collate("C"), units_view.c.unit_id)
        .limit(limit)
        .offset(offset)
    )
    return [_row(r) for r in await session.execute(query)]


async def locations(
    session: AsyncSession, unit_id: str, *, include_retired: bool = False
) -> list[dict[str, Any]]:
    """Return the locations a unit holds now (its own and those transferred to it)."""
    query = select(locations_view).where(locations_view.c.unit_id == unit_id)
    if not include_retired:
        query = query.where(locations_view.c.is_retired.is_(False))
    query = query.order_by(locations_view.c.added_on, locations_view.c.location_id)
    return [_row(r) for r in await session.execute(query)]


async def serving(session: AsyncSession, unit_id: str) -> dict[str, list[str]]:
    """Return which units `unit_id` serves and which support units serve it."""
    serves = await session.scalars(
        select(serving_view.c.served_unit_id)
        .where(serving_view.c.unit_id == unit_id)
        .order_by(serving_view.c.served_unit_id)
    )
    served_by = await session.scalars(
        select(serving_view.c.unit_id)
        .where(serving_view.c.served_unit_id == unit_id)
        .order_by(serving_view.c.unit_id)
    )
    return {"serves": list(serves), "served_by": list(served_by)}


async def grants_on_unit(session: AsyncSession, unit_id: str) -> list[dict[str, Any]]:
    """Return the grants held on `unit_id` itself, and on units merged into it."""
    grants = authz.grants_view
    merged = select(units_view.c.unit_id).where(units_view.c.merged_into == unit_id)
    query = (
        select(grants)
        .where((grants.c.unit_id == unit_id) | grants.c.unit_id.in_(merged))
        .order_by(grants.c.user_id, grants.c.role)
    )
    return [_row(r) for r in await session.execute(query)]


async def grants_of_user(session: AsyncSession, user_id: str) -> dict[str, Any]:
    """Return a user's unit grants and global roles."""
    grants = authz.grants_view
    unit_grants = await session.execute(
        select(grants).where(grants.c.user_id == user_id).order_by(grants.c.unit_id, grants.c.role)
    )
    global_roles = await session.scalars(
        select(authz.global_roles_view.c.role)
        .where(authz.global_roles_view.c.user_id == user_id)
        .order_by(authz.global_roles_view.c.role)
    )
    return {
        "user_id": user_id,
        "grants": [_row(r) for r in unit_grants],
        "global_roles": list(global_roles),
    }


async def units_user_may_act_on(
    session: AsyncSession, user_id: str, roles: Sequence[UnitRole]
) -> list[dict[str, Any]]:
    """Return the active units on which `user_id` holds any of `roles`, with the roles held."""
    held: dict[str, set[str]] = {}
    for role in roles:
        for unit_id in await authz.units_user_may_act_on(session, user_id, role):
            held.setdefault(unit_id, set()).add(role.value)
    if not held:
        return []
    rows = await session.execute(
        select(units_view.c.unit_id, units_view.c.name, units_view.c.unit_type)
        .where(units_view.c.unit_id.in_(list(held)))
        .order_by(units_view.c.name_folded.collate("C"), units_view.c.unit_id)
    )
    return [{**_row(r), "roles": sorted(held[r.unit_id])} for r in rows]


# ---------------------------------------------------------------------------------------------
# From the event store, by design


async def history(
    store: EventStore, unit_id: str, *, after_position: int = 0, limit: int = 100
) -> list[RecordedEvent]:
    """Return a page of every event about `unit_id` (its stream, grants on it), oldest first."""
    return await store.read_all(after_position=after_position, limit=limit, unit_id=unit_id)


@dataclass(slots=True)
class _PastUnit:
    unit_id: str
    parent_id: str | None
    name: str
    unit_type: str
    status: str = "active"
    merged_into: str | None = None


def _fold_as_of(units: dict[str, _PastUnit], recorded: RecordedEvent, on: date) -> None:
    if recorded.type not in _TREE_EVENT_TYPES:
        return
    event = recorded.event()
    if isinstance(event, UnitRegistered):
        if event.registered_on <= on:
            units[event.unit_id] = _PastUnit(
                event.unit_id, event.parent_id, event.name, event.unit_type
            )
        return
    unit = units.get(recorded.stream_id)
    if unit is None:
        return
    match event:
        case UnitRenamed() if event.renamed_on <= on:
            unit.name = event.name
        case UnitDetailsChanged() if event.changed_on <= on and event.unit_type:
            unit.unit_type = event.unit_type
        case UnitReparented() if event.reparented_on <= on:
            unit.parent_id = event.to_parent_id
        case UnitSuspended() if event.suspended_on <= on:
            unit.status = "suspended"
        case UnitReactivated() if event.reactivated_on <= on:
            unit.status = "active"
        case UnitAbolished() if event.abolished_on <= on:
            unit.status = "abolished"
        case UnitMerged() if event.merged_on <= on:
            unit.status = "merged"
            unit.merged_into = event.into_unit_id
        case _:
            return


_TREE_EVENT_TYPES = frozenset(
    {
        "UnitRegistered",
        "UnitRenamed",
        "UnitDetailsChanged",
        "UnitReparented",
        "UnitSuspended",
        "UnitReactivated",
        "UnitAbolished",
        "UnitMerged",
    }
)


async def tree_as_of(
    store: EventStore,
    on: date,
    *,
    root: str | None = None,
    include_closed: bool = False,
    page_size: int = 2000,
) -> AsyncIterator[dict[str, Any]]:
    """Yield the tree as it stood on `on` (by the dates acts took effect), depth first.

    Reads every event page by page; keeps one small record per unit, never the events. Each row
    has the unit's id, name, type, status and parent on that date, and its depth below the root.
    """
    units: dict[str, _PastUnit] = {}
    async for recorded in store.iterate(page_size=page_size):
        _fold_as_of(units, recorded, on)
    below: dict[str | None, list[_PastUnit]] = {}
    for unit in units.values():
        parent = unit.merged_into or unit.parent_id
        below.setdefault(parent if parent in units else None, []).append(unit)
    for siblings in below.values():
        siblings.sort(key=lambda u: (u.name, u.unit_id))
    starts = [units[root]] if root is not None and root in units else []
    if root is None:
        starts = below.get(None, [])
    stack: list[tuple[_PastUnit, int]] = [(unit, 0) for unit in reversed(starts)]
    seen: set[str] = set()
    while stack:
        unit, depth = stack.pop()
        if unit.unit_id in seen:
            continue
        seen.add(unit.unit_id)
        if include_closed or unit.status in ("active", "suspended"):
            yield {
                "unit_id": unit.unit_id,
                "name": unit.name,
                "unit_type": unit.unit_type,
                "status": unit.status,
                "parent_id": unit.merged_into or unit.parent_id,
                "depth": depth,
            }
        stack.extend((child, depth + 1) for child in reversed(below.get(unit.unit_id, [])))
