"""Fold units, equipment and campaign events into the compliance views: `compliance.unit-status`.

Why this exists: the public reports must answer from precomputed tables within milliseconds while
half the units certify in the last 72 hours of a window. The kernel's `ProjectorRunner` calls
`apply_batch` (or `apply`, one event at a time when isolating a poison event) and commits the
changes with its offsets in one transaction.

Notes:
- Order: units, items, inventories and campaigns are different streams on three topics, so their
  events interleave arbitrarily (and differently in a rebuild). Every write is therefore either
  per-stream (an item's own row, guarded by its version) or order-free: min/max upserts, a
  first-certification row kept only if earlier, a campaign's rows recomputed from the
  certification log when its opening or closure arrives, and the unit tree's region/directorate
  recomputed from the whole tree whenever it changes.
- Batches: unit registrations, item registrations, changes and certifications are buffered and
  written as one multi-row statement per table (`projector.equipment.Pending`); the buffer is
  flushed before an event that reads what it holds (a unit's later event, an item's move, a
  campaign event), so a batch has the effect of its events applied one by one.
- The parts: `projector.tree` (units), `projector.equipment` (items, inventories),
  `projector.campaigns` (campaigns).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from compliance.projector.campaigns import campaign_closed, campaign_opened, deadline_extended
from compliance.projector.equipment import Pending, item_moved_between
from compliance.projector.tree import (
    MAX_DEPTH,
    apply_tree_event,
    apply_unit_status,
    place,
    refresh_tree,
    register_units,
    renew_mark,
    renew_units_mark,
)
from compliance.views import CAMPAIGNS_PART, metadata, pending_transfers_view
from shared.events.compliance import CampaignClosed, CampaignDeadlineExtended, CampaignOpened
from shared.events.envelope import RecordedEvent
from shared.events.equipment import (
    BundlePartAdded,
    BundlePartRemoved,
    InventoryCertified,
    InventoryTransferClosed,
    InventoryTransferOpened,
    ItemBundled,
    ItemDetailsCorrected,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferCancelled,
    ItemTransferDispatched,
    ItemTransferRejected,
    ItemUnbundled,
    ItemWithdrawn,
)
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

PROJECTION = "compliance.unit-status"

__all__ = ["MAX_DEPTH", "PROJECTION", "apply", "apply_batch", "metadata", "place", "refresh_tree"]


async def apply(event: RecordedEvent, session: AsyncSession) -> None:
    """Fold one event into the compliance views. Applying a batch of one."""
    await apply_batch([event], session)


class _Batch:
    """One batch being folded: buffered writes and whether the unit tree changed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.pending = Pending()
        self.units: list[UnitRegistered] = []
        self.is_tree_changed = False
        self.are_units_changed = False
        self.are_campaigns_changed = False

    async def flush_units(self) -> None:
        if self.units:
            await register_units(self.session, self.units)
            self.units.clear()

    async def flush(self) -> None:
        await self.flush_units()
        await self.pending.flush(self.session)


async def apply_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Fold a batch in order; recompute the tree once at the end if any event changed it."""
    batch = _Batch(session)
    for recorded in events:
        await _apply_one(batch, recorded)
    await batch.flush()
    if batch.is_tree_changed:
        await refresh_tree(session)
    if batch.is_tree_changed or batch.are_units_changed:
        await renew_units_mark(session)
    if batch.are_campaigns_changed:
        await renew_mark(session, CAMPAIGNS_PART)


async def _apply_one(batch: _Batch, recorded: RecordedEvent) -> None:
    session = batch.session
    match event := recorded.event():
        case UnitRegistered():
            batch.units.append(event)
            batch.is_tree_changed = True
        case UnitRenamed() | UnitReparented() | UnitMerged():
            await batch.flush_units()
            await apply_tree_event(event, session)
            batch.is_tree_changed = True
        case UnitDetailsChanged() | UnitSuspended() | UnitAbolished() | UnitReactivated():
            await batch.flush_units()
            await apply_unit_status(event, session)
            batch.are_units_changed = True
        case CampaignOpened():
            await batch.flush()
            await campaign_opened(event, session)
            batch.are_campaigns_changed = True
        case CampaignDeadlineExtended():
            await deadline_extended(event, session)
            batch.are_campaigns_changed = True
        case CampaignClosed():
            await batch.flush()
            await campaign_closed(event, session)
            batch.are_campaigns_changed = True
        case _:
            await _apply_equipment(batch, recorded, event)


async def _apply_equipment(batch: _Batch, recorded: RecordedEvent, event: object) -> None:
    pending, session, at = batch.pending, batch.session, recorded.recorded_at
    match event:
        case ItemRegistered():
            pending.registered(recorded, event)
        case ItemStatusChanged() | ItemWithdrawn() | ItemTransferAccepted():
            if event.item_id in pending.items:
                await pending.flush(session)
            status = (
                event.to_status
                if isinstance(event, ItemStatusChanged)
                else ItemStatus.WITHDRAWN
                if isinstance(event, ItemWithdrawn)
                else None
            )
            await item_moved_between(
                pending, recorded, event.item_id, event.unit_id, status, session=session
            )
            if isinstance(event, ItemTransferAccepted):
                pending.changed(event.from_unit_id, at)
        case InventoryTransferOpened():
            await session.execute(
                insert(pending_transfers_view)
                .values(
                    unit_id=event.unit_id,
                    transfer_id=event.transfer_id,
                    opened_on=event.performed_on,
                )
                .on_conflict_do_nothing()
            )
        case InventoryTransferClosed():
            await session.execute(
                delete(pending_transfers_view).where(
                    pending_transfers_view.c.unit_id == event.unit_id,
                    pending_transfers_view.c.transfer_id == event.transfer_id,
                )
            )
        case InventoryCertified():
            pending.certified(event)
        case (
            ItemDetailsCorrected()
            | ItemMoved()
            | BundlePartAdded()
            | BundlePartRemoved()
            | ItemBundled()
            | ItemUnbundled()
            | ItemTransferDispatched()
            | ItemTransferRejected()
            | ItemTransferCancelled()
        ):
            # Only "the unit's inventory changed": no count moves.
            pending.changed(event.unit_id, at)
        case _:
            pass  # products, serial claims, grants, locations, our own derived events
