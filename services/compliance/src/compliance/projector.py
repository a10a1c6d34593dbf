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
- "A change" is any event about an item of the unit, at the instant it was recorded (the
  envelope's `recorded_at`), not the date the act says it was performed: what counts is when the
  unit kept its inventory up to date.
- Item counts: `item_count` counts items held (not withdrawn), `in_use_count` those in use; an
  item in transit stays with its source until the destination accepts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from compliance.views import (
    activity_view,
    campaigns_view,
    certifications_view,
    extensions_view,
    items_view,
    metadata,
    pending_transfers_view,
    unit_campaigns_view,
    units_view,
)
from compliance.windows import current_window, regular_window
from shared.events.base import Event
from shared.events.compliance import (
    CampaignClosed,
    CampaignDeadlineExtended,
    CampaignOpened,
    ScopeKind,
)
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
MAX_DEPTH = 64

__all__ = ["PROJECTION", "apply", "apply_batch", "metadata", "refresh_tree"]


async def apply(event: RecordedEvent, session: AsyncSession) -> None:
    """Fold one event into the compliance views. Applying a batch of one."""
    await apply_batch([event], session)


async def apply_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Fold a batch in order; recompute the tree once at the end if any event changed it."""
    is_tree_changed = False
    for recorded in events:
        is_tree_changed |= await _apply_one(recorded, recorded.event(), session)
    if is_tree_changed:
        await refresh_tree(session)


async def _apply_one(recorded: RecordedEvent, event: Event, session: AsyncSession) -> bool:
    """Apply one event; return whether the unit tree changed (names, parents, merges)."""
    match event:
        case UnitRegistered() | UnitRenamed() | UnitReparented() | UnitMerged():
            await _apply_tree_event(event, session)
            return True
        case UnitDetailsChanged() | UnitSuspended() | UnitAbolished() | UnitReactivated():
            await _apply_unit_status(event, session)
        case CampaignOpened():
            await _campaign_opened(event, session)
        case CampaignDeadlineExtended():
            await _deadline_extended(event, session)
        case CampaignClosed():
            await _campaign_closed(event, session)
        case _:
            await _apply_equipment(recorded, event, session)
    return False


async def _apply_equipment(recorded: RecordedEvent, event: Event, session: AsyncSession) -> None:
    match event:
        case ItemRegistered():
            await _item_registered(recorded, event, session)
        case ItemStatusChanged():
            await _item_moved_between(
                recorded, event.item_id, event.unit_id, event.to_status, session
            )
        case ItemWithdrawn():
            await _item_moved_between(
                recorded, event.item_id, event.unit_id, ItemStatus.WITHDRAWN, session
            )
        case ItemTransferAccepted():
            await _item_moved_between(recorded, event.item_id, event.unit_id, None, session)
            await _changed(session, event.from_unit_id, recorded.recorded_at)
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
            await _certified(event, session)
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
            await _changed(session, event.unit_id, recorded.recorded_at)
        case _:
            pass  # products, serial claims, grants, locations, our own derived events


# ---------------------------------------------------------------------------------------------
# Units


async def _apply_tree_event(
    event: UnitRegistered | UnitRenamed | UnitReparented | UnitMerged, session: AsyncSession
) -> None:
    match event:
        case UnitRegistered():
            await session.execute(
                insert(units_view)
                .values(
                    unit_id=event.unit_id,
                    parent_id=event.parent_id,
                    name=event.name,
                    unit_type=event.unit_type,
                    mm_id=event.mm_id,
                    email=event.email or None,
                    is_holding_node=event.is_holding_node,
                    status="active",
                    registered_on=event.registered_on,
                )
                .on_conflict_do_nothing(index_elements=[units_view.c.unit_id])
            )
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


async def _apply_unit_status(
    event: UnitDetailsChanged | UnitSuspended | UnitAbolished | UnitReactivated,
    session: AsyncSession,
) -> None:
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


# ---------------------------------------------------------------------------------------------
# Items and inventories


def _counts(status: ItemStatus | str | None) -> tuple[int, int]:
    """Return how an item of `status` counts: (held, in use)."""
    if status is None or status == ItemStatus.WITHDRAWN:
        return 0, 0
    return 1, 1 if status == ItemStatus.IN_USE else 0


async def _changed(
    session: AsyncSession, unit_id: str, at: datetime, *, held: int = 0, in_use: int = 0
) -> None:
    """Record a change of the unit's inventory at `at`, with item count deltas."""
    activity = activity_view.c
    statement = insert(activity_view).values(
        unit_id=unit_id,
        item_count=held,
        in_use_count=in_use,
        first_change_at=at,
        last_change_at=at,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[activity.unit_id],
            set_={
                "item_count": activity.item_count + excluded.item_count,
                "in_use_count": activity.in_use_count + excluded.in_use_count,
                "first_change_at": func.least(activity.first_change_at, excluded.first_change_at),
                "last_change_at": func.greatest(activity.last_change_at, excluded.last_change_at),
            },
        )
    )


async def _item_registered(
    recorded: RecordedEvent, event: ItemRegistered, session: AsyncSession
) -> None:
    inserted = await session.execute(
        insert(items_view)
        .values(
            item_id=event.item_id,
            unit_id=event.unit_id,
            status=event.status.value,
            version=recorded.version,
        )
        .on_conflict_do_nothing(index_elements=[items_view.c.item_id])
        .returning(items_view.c.item_id)
    )
    held, in_use = _counts(event.status) if inserted.first() is not None else (0, 0)
    await _changed(session, event.unit_id, recorded.recorded_at, held=held, in_use=in_use)


async def _item_moved_between(
    recorded: RecordedEvent,
    item_id: UUID,
    unit_id: str,
    status: ItemStatus | None,
    session: AsyncSession,
) -> None:
    """Set an item's unit (and status, unless None); move its counts from the old to the new."""
    item = items_view.c
    before = (
        await session.execute(
            select(item.unit_id, item.status).where(
                item.item_id == item_id, item.version < recorded.version
            )
        )
    ).first()
    if before is None:
        # Already applied, or an item whose registration this projection never saw.
        await _changed(session, unit_id, recorded.recorded_at)
        return
    new_status = status.value if status is not None else before.status
    await session.execute(
        update(items_view)
        .where(item.item_id == item_id)
        .values(unit_id=unit_id, status=new_status, version=recorded.version)
    )
    old_held, old_in_use = _counts(before.status)
    new_held, new_in_use = _counts(new_status)
    if before.unit_id == unit_id:
        await _changed(
            session,
            unit_id,
            recorded.recorded_at,
            held=new_held - old_held,
            in_use=new_in_use - old_in_use,
        )
        return
    await _changed(
        session, before.unit_id, recorded.recorded_at, held=-old_held, in_use=-old_in_use
    )
    await _changed(session, unit_id, recorded.recorded_at, held=new_held, in_use=new_in_use)


async def _certified(event: InventoryCertified, session: AsyncSession) -> None:
    inserted = await session.execute(
        insert(certifications_view)
        .values(
            certification_id=event.certification_id,
            unit_id=event.unit_id,
            certified_at=event.certified_at,
            certified_on=event.certified_on,
            signer_id=event.signer_id,
            item_count=event.item_count,
        )
        .on_conflict_do_nothing(index_elements=[certifications_view.c.certification_id])
        .returning(certifications_view.c.certification_id)
    )
    if inserted.first() is None:
        return
    activity = activity_view.c
    statement = insert(activity_view).values(
        unit_id=event.unit_id,
        first_certified_at=event.certified_at,
        last_certified_at=event.certified_at,
        last_certification_id=event.certification_id,
        last_signer_id=event.signer_id,
        last_certified_item_count=event.item_count,
    )
    excluded = statement.excluded
    is_later = or_(
        activity.last_certified_at.is_(None),
        excluded.last_certified_at > activity.last_certified_at,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[activity.unit_id],
            set_={
                "first_certified_at": func.least(
                    activity.first_certified_at, excluded.first_certified_at
                ),
                "last_certified_at": func.greatest(
                    activity.last_certified_at, excluded.last_certified_at
                ),
                **{
                    name: _if(is_later, getattr(excluded, name), getattr(activity, name))
                    for name in (
                        "last_certification_id",
                        "last_signer_id",
                        "last_certified_item_count",
                    )
                },
            },
        )
    )
    for campaign_id in await _campaigns_counting(session, event.certified_at):
        await _keep_first_certification(session, campaign_id, event)


def _if(condition: Any, then: Any, otherwise: Any) -> Any:
    return case((condition, then), else_=otherwise)


async def _campaigns_counting(session: AsyncSession, at: datetime) -> list[str]:
    """Return the campaigns a certification at `at` counts for (open, or awaiting late ones)."""
    window = current_window(at)
    campaign = campaigns_view.c
    closed_rows = await session.execute(
        select(campaign.campaign_id).where(
            campaign.campaign_id == window.campaign_id, campaign.closed_at <= at
        )
    )
    ids = [] if closed_rows.first() is not None else [window.campaign_id]
    rows = await session.execute(
        select(campaign.campaign_id).where(
            campaign.opens_at <= at,
            or_(campaign.closed_at.is_(None), campaign.closed_at > at),
            ~campaign.campaign_id.like("window-%"),
        )
    )
    return ids + sorted(r.campaign_id for r in rows)


async def _keep_first_certification(
    session: AsyncSession, campaign_id: str, event: InventoryCertified
) -> None:
    row = unit_campaigns_view.c
    statement = insert(unit_campaigns_view).values(
        campaign_id=campaign_id,
        unit_id=event.unit_id,
        certification_id=event.certification_id,
        certified_at=event.certified_at,
        signer_id=event.signer_id,
        item_count=event.item_count,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[row.campaign_id, row.unit_id],
            set_={
                "certification_id": excluded.certification_id,
                "certified_at": excluded.certified_at,
                "signer_id": excluded.signer_id,
                "item_count": excluded.item_count,
            },
            # Ties on the instant go to the smaller id, so the outcome never depends on order.
            where=or_(
                excluded.certified_at < row.certified_at,
                and_(
                    excluded.certified_at == row.certified_at,
                    excluded.certification_id < row.certification_id,
                ),
            ),
        )
    )


# ---------------------------------------------------------------------------------------------
# Campaigns


async def _campaign_opened(event: CampaignOpened, session: AsyncSession) -> None:
    statement = insert(campaigns_view).values(
        campaign_id=event.campaign_id,
        title=event.title,
        opens_at=event.opens_at,
        deadline_at=event.deadline_at,
        scope_kind=event.scope_kind.value,
        scope_value=event.scope_value,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[campaigns_view.c.campaign_id],
            set_={
                "title": excluded.title,
                "opens_at": excluded.opens_at,
                "deadline_at": excluded.deadline_at,
                "scope_kind": excluded.scope_kind,
                "scope_value": excluded.scope_value,
            },
        )
    )
    await _recompute_campaign(session, event.campaign_id)


async def _deadline_extended(event: CampaignDeadlineExtended, session: AsyncSession) -> None:
    statement = insert(extensions_view).values(
        campaign_id=event.campaign_id,
        scope_kind=event.scope_kind.value,
        scope_id=event.scope_unit_id if event.scope_kind is not ScopeKind.ALL else "",
        deadline_at=event.deadline_at,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[
                extensions_view.c.campaign_id,
                extensions_view.c.scope_kind,
                extensions_view.c.scope_id,
            ],
            set_={
                "deadline_at": func.greatest(
                    extensions_view.c.deadline_at, statement.excluded.deadline_at
                )
            },
        )
    )


async def _campaign_closed(event: CampaignClosed, session: AsyncSession) -> None:
    statement = insert(campaigns_view).values(
        campaign_id=event.campaign_id, closed_at=event.closed_at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[campaigns_view.c.campaign_id],
            set_={
                "closed_at": func.least(campaigns_view.c.closed_at, statement.excluded.closed_at)
            },
        )
    )
    await _recompute_campaign(session, event.campaign_id)


async def _recompute_campaign(session: AsyncSession, campaign_id: str) -> None:
    """Rebuild a campaign's first-certification rows from the certification log."""
    campaign = campaigns_view.c
    row = (
        await session.execute(select(campaigns_view).where(campaign.campaign_id == campaign_id))
    ).first()
    rule = regular_window(campaign_id)
    opens_at = rule.opens_at if rule is not None else (row.opens_at if row is not None else None)
    closes_at = rule.closes_at if rule is not None else None
    if (
        row is not None
        and row.closed_at is not None
        and (closes_at is None or row.closed_at < closes_at)
    ):
        closes_at = row.closed_at
    await session.execute(
        delete(unit_campaigns_view).where(unit_campaigns_view.c.campaign_id == campaign_id)
    )
    if opens_at is None:
        return  # closed before its opening was projected: the opening will recompute
    cert = certifications_view.c
    conditions = [cert.certified_at >= opens_at]
    if closes_at is not None:
        conditions.append(cert.certified_at < closes_at)
    first = (
        select(
            literal(campaign_id).label("campaign_id"),
            cert.unit_id,
            cert.certification_id,
            cert.certified_at,
            cert.signer_id,
            cert.item_count,
        )
        .where(*conditions)
        .distinct(cert.unit_id)
        .order_by(cert.unit_id, cert.certified_at, cert.certification_id)
    )
    await session.execute(
        insert(unit_campaigns_view).from_select(
            [
                "campaign_id",
                "unit_id",
                "certification_id",
                "certified_at",
                "signer_id",
                "item_count",
            ],
            first,
        )
    )
