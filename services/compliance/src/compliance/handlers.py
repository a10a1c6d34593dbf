"""One async function per compliance command: load the campaign, decide, append.

Why this exists: the API and the worker call these; they hold no rules (`compliance.domain` does)
and no SQL beyond the published-state ledger that must commit with the events it records.

Notes: `publish_compliance_changes` is how UnitComplianceChanged reaches `compliance.events`: it
compares each unit's state, computed from the projection as of now, with the last state it
published (`compliance_published_states`) and appends the differences, each with the expected
version of the unit's `compliance:<campaign>:<unit>` stream, in the transaction that updates the
ledger. So a state is published once, a concurrent publisher loses with a version conflict instead
of duplicating, and time-driven changes (the deadline passing: missed) are published too. The
ledger is not part of the projection: rebuilding the projection publishes nothing again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from compliance import domain, views
from compliance.commands import (
    CloseCampaign,
    ExtendDeadline,
    OpenCampaign,
    PublishComplianceChanges,
)
from compliance.windows import Campaign, current_window, last_day_before
from shared.clock import Clock
from shared.events.compliance import (
    ComplianceState,
    UnitComplianceChanged,
    campaign_stream,
    unit_compliance_stream,
)
from shared.eventstore import (
    AppendContext,
    AppendResult,
    EventStore,
    StoreTransaction,
    VersionConflictError,
)

PUBLISH_CHUNK = 500


async def load_campaign(store: EventStore, campaign_id: str) -> domain.CampaignRecord:
    """Return the write side's view of a campaign (a regular window exists by rule)."""
    history = await store.load(campaign_stream(campaign_id))
    return domain.replay(campaign_id, [recorded.event() for recorded in history])


def _append(
    tx: StoreTransaction,
    record: domain.CampaignRecord,
    events: list[Any],
    expected_version: int | None,
    context: AppendContext | None,
) -> None:
    if expected_version is not None and expected_version != record.version:
        raise VersionConflictError(
            campaign_stream(record.campaign_id), expected_version, record.version
        )
    tx.append(
        campaign_stream(record.campaign_id),
        events,
        expected_version=record.version,
        context=context,
    )


async def open_campaign(
    command: OpenCampaign, *, store: EventStore, tx: StoreTransaction, clock: Clock,
    context: AppendContext | None = None,
) -> AppendResult:  # fmt: skip
    """Open an ad-hoc campaign; return the append's result."""
    record = await load_campaign(store, command.campaign_id)
    events = domain.open_campaign(record, command, now=clock.now())
    _append(tx, record, list(events), 0, context)
    return (await tx.flush())[0]


async def extend_deadline(
    command: ExtendDeadline, *, store: EventStore, tx: StoreTransaction, clock: Clock,
    context: AppendContext | None = None,
) -> AppendResult:  # fmt: skip
    """Extend a campaign's deadline for a region or directorate; return the append's result."""
    record = await load_campaign(store, command.campaign_id)
    events = domain.extend_deadline(record, command, now=clock.now())
    _append(tx, record, list(events), command.expected_version, context)
    return (await tx.flush())[0]


async def close_campaign(
    command: CloseCampaign, *, store: EventStore, tx: StoreTransaction, clock: Clock,
    context: AppendContext | None = None,
) -> AppendResult:  # fmt: skip
    """Close a campaign; return the append's result."""
    record = await load_campaign(store, command.campaign_id)
    events = domain.close(record, command, now=clock.now())
    _append(tx, record, list(events), command.expected_version, context)
    return (await tx.flush())[0]


# ---------------------------------------------------------------------------------------------
# Publishing unit states


def _changed_at(state: ComplianceState, row: Any, campaign: Campaign, now: datetime) -> datetime:
    """Return when a state began: the certification, the deadline, the change, or the opening."""
    match state:
        case ComplianceState.CERTIFIED | ComplianceState.LATE:
            at: datetime = row.certified_at
        case ComplianceState.MISSED:
            at = row.deadline_at
        case ComplianceState.IN_PROGRESS:
            at = row.last_change_at
        case ComplianceState.NOT_STARTED:
            at = campaign.opens_at
        case ComplianceState.OUT_OF_SCOPE:
            at = now
    return min(at, now)


async def _pending_changes(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> list[tuple[str, int, UnitComplianceChanged]]:
    query = views.unit_state_select(campaign, now=now, scope_on=views.scope_day(campaign, now))
    rows = {row.unit_id: row for row in await session.execute(query)}
    published = views.published_states.c
    ledger = {
        row.unit_id: (ComplianceState(row.state), row.version)
        for row in await session.execute(
            select(published.unit_id, published.state, published.version).where(
                published.campaign_id == campaign.campaign_id
            )
        )
    }
    changes: list[tuple[str, int, UnitComplianceChanged]] = []
    for unit_id in sorted(rows.keys() | ledger.keys()):
        row = rows.get(unit_id)
        state = ComplianceState(row.state) if row is not None else ComplianceState.OUT_OF_SCOPE
        before, version = ledger.get(unit_id, (None, 0))
        if state == before or (row is None and before is None):
            continue
        deadline_at = row.deadline_at if row is not None else campaign.deadline_at
        event = UnitComplianceChanged(
            unit_id=unit_id,
            campaign_id=campaign.campaign_id,
            from_state=before,
            to_state=state,
            changed_at=_changed_at(state, row, campaign, now),
            deadline_at=deadline_at,
            deadline_on=last_day_before(deadline_at),
            directorate_id=row.directorate_id if row is not None else None,
            region_id=row.region_id if row is not None else None,
            certification_id=row.certification_id if row is not None else None,
            certified_at=row.certified_at if row is not None else None,
            signer_id=row.signer_id if row is not None else None,
        )
        changes.append((unit_id, version, event))
    return changes


async def publish_compliance_changes(
    command: PublishComplianceChanges,
    *,
    store: EventStore,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> int:
    """Append UnitComplianceChanged for each unit whose state changed; return how many."""
    now = clock.now()
    async with sessions() as session:
        campaign = await views.load_campaign(session, command.campaign_id)
        if campaign is None or campaign.opens_at > now:
            return 0
        changes = await _pending_changes(session, campaign, now)
    for start in range(0, len(changes), PUBLISH_CHUNK):
        chunk = changes[start : start + PUBLISH_CHUNK]
        async with store.transaction() as tx:
            for unit_id, version, event in chunk:
                tx.append(
                    unit_compliance_stream(campaign.campaign_id, unit_id),
                    [event],
                    expected_version=version,
                    context=AppendContext(unit_id=unit_id),
                )
            await tx.flush()
            async with tx.connection.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO compliance_published_states (campaign_id, unit_id, state, version)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (campaign_id, unit_id)"
                    " DO UPDATE SET state = EXCLUDED.state, version = EXCLUDED.version",
                    [
                        (campaign.campaign_id, unit_id, event.to_state.value, version + 1)
                        for unit_id, version, event in chunk
                    ],
                )
    return len(changes)


async def campaigns_to_publish(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[str]:
    """Return the campaigns whose unit states may still change: the current window, open ad-hocs."""
    async with sessions() as session:
        adhoc = await views.adhoc_campaigns(session)
    ids = [current_window(now).campaign_id]
    ids += [
        c.campaign_id
        for c in adhoc
        if c.opens_at <= now and (c.closes_at is None or c.closes_at > now)
    ]
    return ids
