"""The equipment read models and the queries over them; an item's history reads the store.

Why this exists: every query of the API reads tables folded by `equipment.projector` (from
`equipment.events`, and the units and locations from `units.events`), never the event store, except
an item's history, which is its events by design.

Tables (in the equipment database, created by migration `equipment_0001`):
- `equipment_units_view`, `equipment_locations_view`: the units and locations this service knows
  (status, open locations), for the handlers' `UnitDirectory` and for location names.
- `products_view`: the catalogue's products with their status.
- `unit_items_view`: one row per item: its details, the unit that holds it (`unit_id`; the
  source while in transit), `inventory_unit_id` (NULL in transit: it belongs to neither inventory),
  the pending transfer, bundle membership and `has_missing_parts`, and the stream version last
  applied (the ETag). `search_folded` is `ictc_fold(serial || asset number)`, stored.

Notes: the listing is ordered by (asset number, item id) under the "C" collation and paged by
keyset on the index `(inventory_unit_id, asset_number, item_id)`, so a page costs the same at any
depth and with a million items in the table; the cursor is that pair, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from equipment.domain import KnownUnit
from shared.db import NAMING_CONVENTION
from shared.events.envelope import RecordedEvent
from shared.eventstore import EventStore
from shared.greek import sql_like_patterns

metadata = MetaData(naming_convention=NAMING_CONVENTION)

units_view = Table(
    "equipment_units_view",
    metadata,
    Column("unit_id", String(32), primary_key=True),
    Column("parent_id", String(32), nullable=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("merged_into", String(32), nullable=True),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)

locations_view = Table(
    "equipment_locations_view",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("unit_id", String(32), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("is_retired", Boolean, nullable=False),
)
Index("ix_equipment_locations_view_unit_id", locations_view.c.unit_id)

products_view = Table(
    "products_view",
    metadata,
    Column("product_id", PG_UUID(as_uuid=True), primary_key=True),
    Column("category_id", String(64), nullable=False),
    Column("manufacturer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("part_number", Text, nullable=True),
    Column("attributes", JSONB, nullable=False),
    Column("proposed_by_unit_id", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("merged_into", PG_UUID(as_uuid=True), nullable=True),
    Column(
        "search_folded",
        Text,
        Computed(
            "ictc_fold(manufacturer || ' ' || model || ' ' || coalesce(part_number, ''))",
            persisted=True,
        ),
    ),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)
Index("ix_products_view_category_id", products_view.c.category_id)
Index("ix_products_view_status", products_view.c.status)

items_view = Table(
    "unit_items_view",
    metadata,
    Column("item_id", PG_UUID(as_uuid=True), primary_key=True),
    Column("unit_id", String(32), nullable=False),
    Column("inventory_unit_id", String(32), nullable=True),
    Column("product_id", PG_UUID(as_uuid=True), nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("manufacturer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("serial_number", Text, nullable=True),
    Column("asset_number", String(64, collation="C"), nullable=False),
    Column("is_legacy_asset_number", Boolean, nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("acquired_on", Date, nullable=True),
    Column("funding_programme", Text, nullable=True),
    Column("contract", Text, nullable=True),
    Column("cost_eur", Numeric(14, 2), nullable=True),
    Column("invoice", Text, nullable=True),
    Column("warranty_ends_on", Date, nullable=True),
    Column("is_product_pending_approval", Boolean, nullable=False),
    Column("notes", Text, nullable=False),
    Column("bundle_item_id", PG_UUID(as_uuid=True), nullable=True),
    Column("part_categories", JSONB, nullable=False),
    Column("has_missing_parts", Boolean, nullable=False),
    Column("transfer_id", PG_UUID(as_uuid=True), nullable=True),
    Column("transfer_to_unit_id", String(32), nullable=True),
    Column("dispatched_on", Date, nullable=True),
    Column("registered_on", Date, nullable=False),
    Column("last_performed_on", Date, nullable=False),
    Column("withdrawal_decision_reference", Text, nullable=True),
    Column(
        "search_folded",
        Text,
        Computed("ictc_fold(coalesce(serial_number, '') || ' ' || asset_number)", persisted=True),
    ),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)
Index(
    "ix_unit_items_view_inventory_listing",
    items_view.c.inventory_unit_id,
    items_view.c.asset_number,
    items_view.c.item_id,
)
Index(
    "ix_unit_items_view_transfer_from",
    items_view.c.unit_id,
    postgresql_where=items_view.c.transfer_id.is_not(None),
)
Index(
    "ix_unit_items_view_transfer_to",
    items_view.c.transfer_to_unit_id,
    postgresql_where=items_view.c.transfer_id.is_not(None),
)
Index(
    "ix_unit_items_view_bundle_item_id",
    items_view.c.bundle_item_id,
    postgresql_where=items_view.c.bundle_item_id.is_not(None),
)

ITEM_COLUMNS = [c for c in items_view.c if c.name not in ("search_folded", "part_categories")]
PRODUCT_COLUMNS = [c for c in products_view.c if c.name != "search_folded"]


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


# ---------------------------------------------------------------------------------------------
# Units and locations


class UnitDirectory:
    """The handlers' view of units (`handlers.UnitDirectory`), read from this service's tables."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known_unit(self, unit_id: str) -> KnownUnit | None:
        """Return the unit with its open locations, or None if it is not known here."""
        status = await self.session.scalar(
            select(units_view.c.status).where(units_view.c.unit_id == unit_id)
        )
        if status is None:
            return None
        locations = await self.session.scalars(
            select(locations_view.c.location_id).where(
                locations_view.c.unit_id == unit_id, locations_view.c.is_retired.is_(False)
            )
        )
        return KnownUnit(unit_id, status, frozenset(locations))


async def get_unit(session: AsyncSession, unit_id: str) -> dict[str, Any] | None:
    """Return a known unit's row, or None."""
    row = (await session.execute(select(units_view).where(units_view.c.unit_id == unit_id))).first()
    return _row(row) if row else None


async def unit_locations(session: AsyncSession, unit_id: str) -> list[dict[str, Any]]:
    """Return a unit's locations (retired ones too), by name."""
    rows = await session.execute(
        select(locations_view)
        .where(locations_view.c.unit_id == unit_id)
        .order_by(locations_view.c.name, locations_view.c.location_id)
    )
    return [_row(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Products


async def get_product(session: AsyncSession, product_id: UUID) -> dict[str, Any] | None:
    """Return a product's row, or None."""
    row = (
        await session.execute(
            select(*PRODUCT_COLUMNS).where(products_view.c.product_id == product_id)
        )
    ).first()
    return _row(row) if row else None


async def search_products(
    session: AsyncSession,
    *,
    text: str | None = None,
    category_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Return products matching words of manufacturer/model/part number, category and status."""
    query = select(*PRODUCT_COLUMNS)
    if text:
        for pattern in sql_like_patterns(text):
            query = query.where(products_view.c.search_folded.like(pattern))
    if category_id:
        query = query.where(products_view.c.category_id == category_id)
    if status:
        query = query.where(products_view.c.status == status)
    query = query.order_by(
        products_view.c.manufacturer, products_view.c.model, products_view.c.product_id
    )
    rows = await session.execute(query.limit(limit).offset(offset))
    return [_row(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Items


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """What a listing of a unit's inventory is narrowed by."""

    category_id: str | None = None
    status: str | None = None
    location_id: str | None = None
    product_id: UUID | None = None
    text: str | None = None  # words of the serial or asset number, accents and case ignored


class InvalidCursorError(ValueError):
    """The cursor is not one this service gave out."""


def encode_cursor(asset_number: str, item_id: UUID) -> str:
    """Return the opaque cursor of the row after which the next page starts."""
    raw = json.dumps([asset_number, str(item_id)], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, UUID]:
    """Return the (asset number, item id) a cursor stands for."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        asset_number, item_id = json.loads(raw)
        return str(asset_number), UUID(str(item_id))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursorError(cursor) from exc


def _filtered(unit_id: str, filters: ItemFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [items_view.c.inventory_unit_id == unit_id]
    if filters.category_id:
        where.append(items_view.c.category_id == filters.category_id)
    if filters.status:
        where.append(items_view.c.status == filters.status)
    if filters.location_id:
        where.append(items_view.c.location_id == filters.location_id)
    if filters.product_id:
        where.append(items_view.c.product_id == filters.product_id)
    if filters.text:
        where += [items_view.c.search_folded.like(p) for p in sql_like_patterns(filters.text)]
    return where


async def list_items(
    session: AsyncSession,
    unit_id: str,
    filters: ItemFilters,
    *,
    limit: int,
    after: tuple[str, UUID] | None = None,
) -> list[dict[str, Any]]:
    """Return a page of a unit's inventory, in (asset number, item id) order, after `after`."""
    query = select(*ITEM_COLUMNS).where(*_filtered(unit_id, filters))
    if after is not None:
        query = query.where(
            tuple_(items_view.c.asset_number, items_view.c.item_id)
            > tuple_(literal(after[0]), literal(after[1], PG_UUID(as_uuid=True)))
        )
    query = query.order_by(items_view.c.asset_number, items_view.c.item_id).limit(limit)
    return [_row(r) for r in await session.execute(query)]


async def iterate_items(
    session: AsyncSession, unit_id: str, filters: ItemFilters, *, page_size: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Yield every row of a listing, page by page (memory stays flat for exports)."""
    after: tuple[str, UUID] | None = None
    while True:
        page = await list_items(session, unit_id, filters, limit=page_size, after=after)
        for row in page:
            yield row
        if len(page) < page_size:
            return
        after = (page[-1]["asset_number"], page[-1]["item_id"])


async def count_items(session: AsyncSession, unit_id: str, filters: ItemFilters) -> dict[str, Any]:
    """Return the listing's total and its counts by category and by status."""
    where = _filtered(unit_id, filters)
    counts: dict[str, Any] = {"total": 0, "by_category": {}, "by_status": {}}
    for column, key in (
        (items_view.c.category_id, "by_category"),
        (items_view.c.status, "by_status"),
    ):
        rows = await session.execute(
            select(column, func.count()).where(*where).group_by(column).order_by(column)
        )
        counts[key] = dict(rows.tuples().all())
    counts["total"] = sum(counts["by_status"].values())
    return counts


async def get_item(session: AsyncSession, item_id: UUID) -> dict[str, Any] | None:
    """Return an item's row (with its parts' ids), or None."""
    row = (
        await session.execute(
            select(*ITEM_COLUMNS, items_view.c.part_categories).where(
                items_view.c.item_id == item_id
            )
        )
    ).first()
    if row is None:
        return None
    item = _row(row)
    item["part_item_ids"] = sorted(item.pop("part_categories"))
    return item


async def pending_transfers(session: AsyncSession, unit_id: str) -> dict[str, list[dict[str, Any]]]:
    """Return the items in transit from the unit (outgoing) and to it (incoming)."""
    outgoing = await session.execute(
        select(*ITEM_COLUMNS)
        .where(items_view.c.transfer_id.is_not(None), items_view.c.unit_id == unit_id)
        .order_by(items_view.c.dispatched_on, items_view.c.item_id)
    )
    incoming = await session.execute(
        select(*ITEM_COLUMNS)
        .where(items_view.c.transfer_id.is_not(None), items_view.c.transfer_to_unit_id == unit_id)
        .order_by(items_view.c.dispatched_on, items_view.c.item_id)
    )
    return {"outgoing": [_row(r) for r in outgoing], "incoming": [_row(r) for r in incoming]}


async def units_of_item(session: AsyncSession, item_id: UUID) -> list[str]:
    """Return the units that see an item: its holder and, in transit, its destination."""
    row = (
        await session.execute(
            select(items_view.c.unit_id, items_view.c.transfer_to_unit_id).where(
                items_view.c.item_id == item_id
            )
        )
    ).first()
    if row is None:
        return []
    return [u for u in (row[0], row[1]) if u]


async def location_names(session: AsyncSession, location_ids: Sequence[str]) -> dict[str, str]:
    """Return the names of the given locations."""
    if not location_ids:
        return {}
    rows = await session.execute(
        select(locations_view.c.location_id, locations_view.c.name).where(
            or_(locations_view.c.location_id.in_(list(set(location_ids))))
        )
    )
    return dict(rows.tuples().all())


async def history(store: EventStore, stream_id: str) -> list[RecordedEvent]:
    """Return every event of a stream, oldest first, from the event store (by design)."""
    return await store.load(stream_id)
