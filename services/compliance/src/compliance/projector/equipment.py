"""Items and inventories in the compliance projection: item counts, changes, certifications.

Why this exists: at the end of a window equipment events arrive by the hundred a second, and a
fold must cost tens of microseconds each. So `Pending` buffers a batch's registrations, changes
and certifications in memory and `Pending.flush` writes them as one multi-row statement per table
(items, certifications, activity, campaign rows); only the rare events that read an item's
previous unit or status (status changes, withdrawals, accepted transfers) run their own queries.

Notes:
- Every buffered write is order-free (counts are sums; first/last change are least/greatest; the
  last certification is the latest instant, the earliest in batch order on a tie, as applying the
  events one by one keeps it; a campaign's row keeps the earliest certification, ties to the
  smaller id), so a batch's effect is that of applying its events one by one.
- "A change" is any event about an item of the unit, at the instant it was recorded (the
  envelope's `recorded_at`): what counts is when the unit kept its inventory up to date.
- Item counts: `item_count` counts items held (not withdrawn), `in_use_count` those in use; an
  item in transit stays with its source until the destination accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from compliance.projector.campaigns import counting_campaigns, known_campaigns
from compliance.projector.rows import columns_of, execute_rows, insert_rows
from compliance.views import (
    activity_view,
    certifications_view,
    items_view,
    unit_campaigns_view,
)
from shared.events.envelope import RecordedEvent
from shared.events.equipment import InventoryCertified, ItemRegistered, ItemStatus

_item = items_view.c
_ITEM_COLUMNS = ("item_id", "unit_id", "status", "version")
_INSERT_ITEMS = (
    insert_rows(items_view, _ITEM_COLUMNS)
    .on_conflict_do_nothing(index_elements=[_item.item_id])
    .returning(_item.item_id)
)
_cert = certifications_view.c
_CERTIFICATION_COLUMNS = (
    "certification_id", "unit_id", "certified_at", "certified_on", "signer_id", "item_count",
)  # fmt: skip
_INSERT_CERTIFICATIONS = (
    insert_rows(certifications_view, _CERTIFICATION_COLUMNS)
    .on_conflict_do_nothing(index_elements=[_cert.certification_id])
    .returning(_cert.certification_id)
)
_ACTIVITY_COLUMNS = (
    "unit_id", "item_count", "in_use_count", "first_change_at", "last_change_at",
    "first_certified_at", "last_certified_at", "last_certification_id", "last_signer_id",
    "last_certified_item_count",
)  # fmt: skip
_UNIT_CAMPAIGN_COLUMNS = (
    "campaign_id", "unit_id", "certification_id", "certified_at", "signer_id", "item_count",
)  # fmt: skip


def _upsert_activity_statement() -> Any:
    """Counts add up; change and certification instants keep their extremes; the last
    certification's details follow the latest instant (a unit with none here never wins)."""
    activity = activity_view.c
    statement = insert_rows(activity_view, _ACTIVITY_COLUMNS)
    excluded = statement.excluded
    is_later = or_(
        activity.last_certified_at.is_(None),
        excluded.last_certified_at > activity.last_certified_at,
    )
    return statement.on_conflict_do_update(
        index_elements=[activity.unit_id],
        set_={
            "item_count": activity.item_count + excluded.item_count,
            "in_use_count": activity.in_use_count + excluded.in_use_count,
            "first_change_at": func.least(activity.first_change_at, excluded.first_change_at),
            "last_change_at": func.greatest(activity.last_change_at, excluded.last_change_at),
            "first_certified_at": func.least(
                activity.first_certified_at, excluded.first_certified_at
            ),
            "last_certified_at": func.greatest(
                activity.last_certified_at, excluded.last_certified_at
            ),
            **{
                name: case((is_later, getattr(excluded, name)), else_=getattr(activity, name))
                for name in ("last_certification_id", "last_signer_id", "last_certified_item_count")
            },
        },
    )


def _upsert_unit_campaigns_statement() -> Any:
    """Keep a campaign's earliest certification per unit; ties on the instant go to the smaller
    id, so the outcome never depends on order."""
    row = unit_campaigns_view.c
    statement = insert_rows(unit_campaigns_view, _UNIT_CAMPAIGN_COLUMNS)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[row.campaign_id, row.unit_id],
        set_={
            "certification_id": excluded.certification_id,
            "certified_at": excluded.certified_at,
            "signer_id": excluded.signer_id,
            "item_count": excluded.item_count,
        },
        where=or_(
            excluded.certified_at < row.certified_at,
            and_(
                excluded.certified_at == row.certified_at,
                excluded.certification_id < row.certification_id,
            ),
        ),
    )


_UPSERT_ACTIVITY = _upsert_activity_statement()
_UPSERT_UNIT_CAMPAIGNS = _upsert_unit_campaigns_statement()


def counts(status: ItemStatus | str | None) -> tuple[int, int]:
    """Return how an item of `status` counts: (held, in use)."""
    if status is None or status == ItemStatus.WITHDRAWN:
        return 0, 0
    return 1, 1 if status == ItemStatus.IN_USE else 0


@dataclass(slots=True)
class _Activity:
    """A unit's buffered activity: count deltas, change and certification extremes."""

    held: int = 0
    in_use: int = 0
    first_change_at: datetime | None = None
    last_change_at: datetime | None = None
    first_certified_at: datetime | None = None
    last: InventoryCertified | None = None

    def changed(self, at: datetime, held: int, in_use: int) -> None:
        self.held += held
        self.in_use += in_use
        if self.first_change_at is None or at < self.first_change_at:
            self.first_change_at = at
        if self.last_change_at is None or at > self.last_change_at:
            self.last_change_at = at

    def certified(self, event: InventoryCertified) -> None:
        at = event.certified_at
        if self.first_certified_at is None or at < self.first_certified_at:
            self.first_certified_at = at
        if self.last is None or at > self.last.certified_at:
            self.last = event


@dataclass(slots=True)
class Pending:
    """A batch's buffered writes, flushed as one statement per table."""

    items: dict[UUID, tuple[ItemRegistered, RecordedEvent]] = field(default_factory=dict)
    changes: list[tuple[str, datetime, int, int]] = field(default_factory=list)
    certifications: dict[UUID, InventoryCertified] = field(default_factory=dict)

    def registered(self, recorded: RecordedEvent, event: ItemRegistered) -> None:
        """Buffer an item's registration (a repeat of one already buffered only is a change)."""
        if event.item_id in self.items:
            self.changed(event.unit_id, recorded.recorded_at)
        else:
            self.items[event.item_id] = (event, recorded)

    def changed(self, unit_id: str, at: datetime, *, held: int = 0, in_use: int = 0) -> None:
        """Buffer a change of a unit's inventory at `at`, with item count deltas."""
        self.changes.append((unit_id, at, held, in_use))

    def certified(self, event: InventoryCertified) -> None:
        """Buffer a certification (a repeat of one already buffered is ignored)."""
        self.certifications.setdefault(event.certification_id, event)

    async def flush(self, session: AsyncSession) -> None:
        """Write what is buffered, then forget it."""
        activity: dict[str, _Activity] = {}
        if self.items:
            await self._flush_items(session, activity)
        for unit_id, at, held, in_use in self.changes:
            activity.setdefault(unit_id, _Activity()).changed(at, held, in_use)
        if self.certifications:
            await self._flush_certifications(session, activity)
        if activity:
            await _upsert_activity(session, activity)
        self.items.clear()
        self.changes.clear()
        self.certifications.clear()

    async def _flush_items(self, session: AsyncSession, activity: dict[str, _Activity]) -> None:
        rows = list(self.items.values())
        inserted = {
            r.item_id
            for r in await execute_rows(
                session,
                _INSERT_ITEMS,
                columns_of(
                    [
                        {
                            "item_id": e.item_id,
                            "unit_id": e.unit_id,
                            "status": e.status.value,
                            "version": recorded.version,
                        }
                        for e, recorded in rows
                    ],
                    _ITEM_COLUMNS,
                ),
            )
        }
        for event, recorded in rows:
            held, in_use = counts(event.status) if event.item_id in inserted else (0, 0)
            activity.setdefault(event.unit_id, _Activity()).changed(
                recorded.recorded_at, held, in_use
            )

    async def _flush_certifications(
        self, session: AsyncSession, activity: dict[str, _Activity]
    ) -> None:
        rows = list(self.certifications.values())
        inserted = {
            r.certification_id
            for r in await execute_rows(
                session,
                _INSERT_CERTIFICATIONS,
                columns_of(
                    [
                        {
                            "certification_id": e.certification_id,
                            "unit_id": e.unit_id,
                            "certified_at": e.certified_at,
                            "certified_on": e.certified_on,
                            "signer_id": e.signer_id,
                            "item_count": e.item_count,
                        }
                        for e in rows
                    ],
                    _CERTIFICATION_COLUMNS,
                ),
            )
        }
        new = [e for e in rows if e.certification_id in inserted]
        if not new:
            return
        known = await known_campaigns(session)
        first: dict[tuple[str, str], InventoryCertified] = {}
        for event in new:
            activity.setdefault(event.unit_id, _Activity()).certified(event)
            for campaign_id in counting_campaigns(known, event.certified_at):
                key = (campaign_id, event.unit_id)
                kept = first.get(key)
                if kept is None or (event.certified_at, event.certification_id) < (
                    kept.certified_at,
                    kept.certification_id,
                ):
                    first[key] = event
        await execute_rows(
            session,
            _UPSERT_UNIT_CAMPAIGNS,
            columns_of(
                [
                    {
                        "campaign_id": campaign_id,
                        "unit_id": e.unit_id,
                        "certification_id": e.certification_id,
                        "certified_at": e.certified_at,
                        "signer_id": e.signer_id,
                        "item_count": e.item_count,
                    }
                    for (campaign_id, _), e in sorted(first.items(), key=lambda kv: kv[0])
                ],
                _UNIT_CAMPAIGN_COLUMNS,
            ),
        )


async def _upsert_activity(session: AsyncSession, activity: dict[str, _Activity]) -> None:
    await execute_rows(
        session,
        _UPSERT_ACTIVITY,
        columns_of(
            [
                {
                    "unit_id": unit_id,
                    "item_count": a.held,
                    "in_use_count": a.in_use,
                    "first_change_at": a.first_change_at,
                    "last_change_at": a.last_change_at,
                    "first_certified_at": a.first_certified_at,
                    "last_certified_at": a.last.certified_at if a.last else None,
                    "last_certification_id": a.last.certification_id if a.last else None,
                    "last_signer_id": a.last.signer_id if a.last else None,
                    "last_certified_item_count": a.last.item_count if a.last else None,
                }
                # A stable order: concurrent writers lock rows alike.
                for unit_id, a in sorted(activity.items(), key=lambda kv: kv[0])
            ],
            _ACTIVITY_COLUMNS,
        ),
    )


async def item_moved_between(
    pending: Pending,
    recorded: RecordedEvent,
    item_id: UUID,
    unit_id: str,
    status: ItemStatus | None,
    *,
    session: AsyncSession,
) -> None:
    """Set an item's unit (and status, unless None); move its counts from the old to the new.

    Reads the item's row: `pending` must hold no registration of it (flush first).
    """
    item = _item
    before = (
        await session.execute(
            select(item.unit_id, item.status).where(
                item.item_id == item_id, item.version < recorded.version
            )
        )
    ).first()
    at = recorded.recorded_at
    if before is None:
        # Already applied, or an item whose registration this projection never saw.
        pending.changed(unit_id, at)
        return
    new_status = status.value if status is not None else before.status
    await session.execute(
        update(items_view)
        .where(item.item_id == item_id)
        .values(unit_id=unit_id, status=new_status, version=recorded.version)
    )
    old_held, old_in_use = counts(before.status)
    new_held, new_in_use = counts(new_status)
    if before.unit_id == unit_id:
        pending.changed(unit_id, at, held=new_held - old_held, in_use=new_in_use - old_in_use)
        return
    pending.changed(before.unit_id, at, held=-old_held, in_use=-old_in_use)
    pending.changed(unit_id, at, held=new_held, in_use=new_in_use)


__all__ = ["Pending", "counts", "item_moved_between"]
