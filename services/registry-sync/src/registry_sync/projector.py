"""Fold units, equipment and compliance events into the registry view and mark bodies to push.

Why this exists: every event that changes what a body reports (a registration, a status change, a
transfer, a withdrawal, a correction, a unit abolished or merged, a campaign closing) must lead to a
new version of that body's table at the registry. This projection keeps the items' registry-relevant
state (`registry_sync.views`) and, in the same transaction, bumps the ledger's `wanted_seq` of each
body whose table may have changed; the delivery worker does the rest.

Notes:
- Order: an item's events arrive in order (one stream, one partition), but units, items and
  campaigns interleave arbitrarily. Item rows are guarded by their stream version; a body bump for
  a unit not registered yet finds no ledger row, and the unit's registration later creates the row
  with its items already in place, so nothing depends on the interleaving.
- Items in transit stay with the source until the destination accepts them (the events say so:
  `unit_id` is the holder after each event).
- Every bump also NOTIFYs channel `rs_ledger` (delivered at commit, deduplicated by PostgreSQL), so
  the delivery worker wakes within milliseconds instead of polling.
- A product merge relabels the current items of the merged product with the surviving product's
  category, manufacturer and model (their history rows keep what the items' own events said).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from registry_sync.views import (
    bodies,
    campaigns,
    certifications,
    certified_rounds,
    item_history,
    items,
    ledger,
    metadata,
    products,
)
from shared.events.compliance import CampaignClosed, CampaignOpened
from shared.events.envelope import RecordedEvent
from shared.events.equipment import (
    InventoryCertified,
    ItemBundled,
    ItemDetailsCorrected,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    ItemUnbundled,
    ItemWithdrawn,
    ProductMerged,
    ProductProposed,
)
from shared.events.units import (
    UnitAbolished,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitSuspended,
)

PROJECTION = "registry-sync.view"
NOTIFY_CHANNEL = "rs_ledger"

__all__ = [
    "NOTIFY_CHANNEL",
    "PROJECTION",
    "apply",
    "apply_batch",
    "mark_certified_round",
    "metadata",
]


async def apply(recorded: RecordedEvent, session: AsyncSession) -> None:  # noqa: PLR0912
    """Apply one event to the registry view and bump the bodies it touches."""
    event = recorded.event()
    at = recorded.recorded_at
    match event:
        case UnitRegistered() if not event.is_holding_node:
            await _register_body(session, event, at)
        case UnitRenamed():
            await _update_body(session, event.unit_id, at, name=event.name)
        case UnitSuspended():
            await _update_body(session, event.unit_id, at, status="suspended")
        case UnitReactivated():
            await _update_body(session, event.unit_id, at, status="active")
        case UnitAbolished():
            await _update_body(session, event.unit_id, at, status="abolished")
        case UnitMerged():
            await _merge_body(session, event, at)
        case (
            ItemRegistered()
            | ItemDetailsCorrected()
            | ItemStatusChanged()
            | ItemWithdrawn()
            | ItemBundled()
            | ItemUnbundled()
            | ItemTransferAccepted()
            | ItemTransferDispatched()
            | ItemTransferRejected()
            | ItemTransferCancelled()
        ):
            await _flush_items(session, [(recorded, event)])  # the batch path, for one event
        case InventoryCertified():
            await session.execute(
                insert(certifications)
                .values(
                    certification_id=event.certification_id,
                    unit_id=event.unit_id,
                    certified_at=event.certified_at,
                    content_hash=event.content_hash,
                    item_count=event.item_count,
                    covers_position=event.covers_position,
                )
                .on_conflict_do_nothing()
            )
        case ProductProposed():
            await session.execute(
                insert(products)
                .values(
                    product_id=event.product_id,
                    category_id=event.category_id,
                    manufacturer=event.manufacturer,
                    model=event.model,
                )
                .on_conflict_do_nothing()
            )
        case ProductMerged():
            await _merge_product(session, event.product_id, event.into_product_id, at)
        case CampaignOpened():
            await session.execute(
                insert(campaigns)
                .values(
                    campaign_id=event.campaign_id,
                    opens_at=event.opens_at,
                    deadline_at=event.deadline_at,
                )
                .on_conflict_do_update(
                    index_elements=[campaigns.c.campaign_id],
                    set_={"opens_at": event.opens_at, "deadline_at": event.deadline_at},
                )
            )
        case CampaignClosed():
            await session.execute(
                insert(campaigns)
                .values(campaign_id=event.campaign_id, closed_at=event.closed_at)
                .on_conflict_do_update(
                    index_elements=[campaigns.c.campaign_id],
                    set_={"closed_at": event.closed_at},
                )
            )
            await mark_certified_round(session, event.campaign_id, event.closed_at, at)
        case _:
            pass  # locations, grants, moves, bundle-side records: nothing the registry reports


async def apply_batch(batch: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Apply a batch with the effect of `apply` on each event in order, items in bulk.

    Runs of item events are folded in memory over their rows (loaded in one query) and written
    back as one upsert, one history insert and one ledger bump; any other event first flushes
    the run, then goes through `apply` (it may read or relabel items).
    """
    run: list[tuple[RecordedEvent, Any]] = []
    for recorded in batch:
        event = recorded.event()
        if isinstance(event, ItemRegistered) or _item_values(event) is not None:
            run.append((recorded, event))
            continue
        await _flush_items(session, run)
        run = []
        await apply(recorded, session)
    await _flush_items(session, run)


_upsert = insert(items)
UPSERT_ITEMS = _upsert.on_conflict_do_update(
    index_elements=[items.c.item_id],
    set_={c.name: _upsert.excluded[c.name] for c in items.c if c.name != "item_id"},
)
INSERT_HISTORY = insert(item_history).on_conflict_do_nothing()


async def _flush_items(session: AsyncSession, run: list[tuple[RecordedEvent, Any]]) -> None:
    if not run:
        return
    ids = list({UUID(recorded.stream_id) for recorded, _ in run})
    state: dict[UUID, dict[str, Any]] = {
        row.item_id: dict(row._mapping)
        for row in await session.execute(select(items).where(items.c.item_id.in_(ids)))
    }
    changed: dict[UUID, dict[str, Any]] = {}
    history: list[dict[str, Any]] = []
    touched: dict[str, datetime] = {}
    for recorded, event in run:
        item_id = UUID(recorded.stream_id)
        current = state.get(item_id)
        if isinstance(event, ItemRegistered):
            if current is not None:
                continue
            after = _registered_row(recorded, event)
            units = [event.unit_id]
        else:
            values = _item_values(event) or {}
            if (
                current is None
                or current["stream_version"] >= recorded.version
                or all(current[name] == value for name, value in values.items())
            ):
                continue
            after = (
                current
                | values
                | {
                    "stream_version": recorded.version,
                    "position": recorded.position,
                }
            )
            units = [current["unit_id"], after["unit_id"]]
        state[item_id] = changed[item_id] = after
        history.append(_history_row(after))
        for unit_id in units:
            touched[unit_id] = min(touched.get(unit_id, recorded.recorded_at), recorded.recorded_at)
    # Executemany forms: one cached statement whatever the number of rows (SQLAlchemy batches
    # them as multi-row VALUES); a fresh multi-row statement per batch cost more to compile
    # than to run.
    if changed:
        await session.execute(UPSERT_ITEMS, list(changed.values()))
    if history:
        await session.execute(INSERT_HISTORY, history)
    if touched:
        await _bump_bodies(session, list(touched), min(touched.values()))


async def mark_certified_round(
    session: AsyncSession, campaign_id: str, closed_at: datetime, at: datetime
) -> bool:
    """Make every body owe the certified report of `campaign_id` (once per campaign).

    Returns whether this call marked them (False: the round was marked before, e.g. in a rebuild).
    """
    marked = (
        await session.execute(
            insert(certified_rounds)
            .values(campaign_id=campaign_id, closed_at=closed_at, marked_at=at)
            .on_conflict_do_nothing()
            .returning(certified_rounds.c.campaign_id)
        )
    ).scalar_one_or_none()
    if marked is None:
        return False
    await session.execute(
        update(ledger).values(
            wanted_seq=ledger.c.wanted_seq + 1,
            certified_campaign=campaign_id,
            dirty_since=func.coalesce(ledger.c.dirty_since, at),
        )
    )
    await _notify(session)
    return True


# ---------------------------------------------------------------------------------------------
# Bodies


async def _register_body(session: AsyncSession, event: UnitRegistered, at: datetime) -> None:
    await session.execute(
        insert(bodies)
        .values(unit_id=event.unit_id, name=event.name, status="active", reports_to=event.unit_id)
        .on_conflict_do_nothing()
    )
    await session.execute(
        insert(ledger)
        .values(body_code=event.unit_id, wanted_seq=1, dirty_since=at)
        .on_conflict_do_update(
            index_elements=[ledger.c.body_code],
            set_={
                "wanted_seq": ledger.c.wanted_seq + 1,
                "dirty_since": func.coalesce(ledger.c.dirty_since, at),
            },
        )
    )
    await _notify(session)


async def _update_body(session: AsyncSession, unit_id: str, at: datetime, **values: Any) -> None:
    await session.execute(update(bodies).where(bodies.c.unit_id == unit_id).values(**values))
    await _bump_bodies(session, [unit_id], at)


async def _merge_body(session: AsyncSession, event: UnitMerged, at: datetime) -> None:
    target = (
        await session.execute(
            select(bodies.c.reports_to).where(bodies.c.unit_id == event.into_unit_id)
        )
    ).scalar_one_or_none() or event.into_unit_id
    await session.execute(
        update(bodies)
        .where(bodies.c.unit_id == event.unit_id)
        .values(status="merged", merged_into=event.into_unit_id, reports_to=target)
    )
    # Units merged into this one earlier now count where it counts.
    await session.execute(
        update(bodies).where(bodies.c.reports_to == event.unit_id).values(reports_to=target)
    )
    await _bump_bodies(session, [event.unit_id, target], at)


async def _bump_bodies(session: AsyncSession, unit_ids: Iterable[str], at: datetime) -> None:
    """Mark the bodies whose tables count these units' items (each unit's own ledger row too)."""
    wanted = list(dict.fromkeys(unit_ids))
    counted_in = (
        await session.execute(select(bodies.c.reports_to).where(bodies.c.unit_id.in_(wanted)))
    ).scalars()
    # Codes first, then an index scan by key (an OR of two IN lists scanned the whole ledger).
    codes = sorted({*counted_in, *wanted})
    await session.execute(
        update(ledger)
        .where(ledger.c.body_code.in_(codes))
        .values(
            wanted_seq=ledger.c.wanted_seq + 1,
            dirty_since=func.coalesce(ledger.c.dirty_since, at),
        )
    )
    await _notify(session)


async def _notify(session: AsyncSession) -> None:
    """NOTIFY the delivery worker, once per transaction (PostgreSQL would fold repeats anyway)."""
    marker = id(session.get_transaction())
    if session.info.get("rs_notified") == marker:
        return
    session.info["rs_notified"] = marker
    await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


# ---------------------------------------------------------------------------------------------
# Items


def _registered_row(recorded: RecordedEvent, event: ItemRegistered) -> dict[str, Any]:
    acquired = event.acquisition.acquired_on
    return {
        "item_id": event.item_id,
        "unit_id": event.unit_id,
        "product_id": event.product_id,
        "category_id": event.category_id,
        "manufacturer": event.manufacturer,
        "model": event.model,
        "acquisition_year": acquired.year if acquired else None,
        "status": event.status.value,
        "bundle_item_id": None,
        "stream_version": recorded.version,
        "position": recorded.position,
    }


def _item_values(event: Any) -> dict[str, Any] | None:  # noqa: PLR0911  (one per event type)
    """Return what an item event changes in the item's row (None: not an item change)."""
    match event:
        case ItemDetailsCorrected():
            values: dict[str, Any] = {
                name: getattr(event, name)
                for name in ("product_id", "category_id", "manufacturer", "model")
                if getattr(event, name) is not None
            }
            if event.acquisition is not None:
                acquired = event.acquisition.acquired_on
                values["acquisition_year"] = acquired.year if acquired else None
            if "acquisition" in event.cleared_fields:
                values["acquisition_year"] = None
            return values
        case ItemStatusChanged():
            return {"status": event.to_status.value}
        case ItemWithdrawn():
            return {"status": ItemStatus.WITHDRAWN.value}
        case ItemBundled():
            return {"bundle_item_id": event.bundle_item_id}
        case ItemUnbundled():
            return {"bundle_item_id": None}
        case (
            ItemTransferAccepted()
            | ItemTransferDispatched()
            | ItemTransferRejected()
            | ItemTransferCancelled()
        ):
            return {"unit_id": event.unit_id}
        case _:
            return None


def _history_row(row: Any) -> dict[str, Any]:
    return {
        "item_id": row["item_id"],
        "stream_version": row["stream_version"],
        "position": row["position"],
        "unit_id": row["unit_id"],
        "category_id": row["category_id"],
        "manufacturer": row["manufacturer"],
        "model": row["model"],
        "acquisition_year": row["acquisition_year"],
        "status": row["status"],
        "in_bundle": row["bundle_item_id"] is not None,
    }


async def _merge_product(
    session: AsyncSession, product_id: UUID, into_product_id: UUID, at: datetime
) -> None:
    await session.execute(
        update(products)
        .where(products.c.product_id == product_id)
        .values(merged_into=into_product_id)
    )
    target = (
        await session.execute(select(products).where(products.c.product_id == into_product_id))
    ).one_or_none()
    if target is None:
        return
    touched = (
        await session.execute(
            update(items)
            .where(items.c.product_id == product_id)
            .values(
                product_id=into_product_id,
                category_id=target.category_id,
                manufacturer=target.manufacturer,
                model=target.model,
            )
            .returning(items.c.unit_id)
        )
    ).scalars()
    units = list(touched)
    if units:
        await _bump_bodies(session, units, at)
