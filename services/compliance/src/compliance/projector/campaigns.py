"""Campaign events in the compliance projection: openings, extensions, closures.

Why this exists: a campaign's first-certification rows are recomputed from the certification log
when its opening or closure arrives (order-free), and a certification counts for the campaigns
open at its instant (`counting_campaigns`, evaluated in memory over the few campaigns known).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from compliance.views import (
    campaigns_view,
    certifications_view,
    extensions_view,
    unit_campaigns_view,
)
from compliance.windows import current_window, regular_window
from shared.events.compliance import (
    CampaignClosed,
    CampaignDeadlineExtended,
    CampaignOpened,
    ScopeKind,
)


@dataclass(frozen=True, slots=True)
class KnownCampaign:
    """What deciding whether a certification counts for a campaign needs."""

    campaign_id: str
    opens_at: datetime | None
    closed_at: datetime | None


async def known_campaigns(session: AsyncSession) -> dict[str, KnownCampaign]:
    """Return every projected campaign row (a handful: windows and ad-hoc campaigns)."""
    campaign = campaigns_view.c
    query = select(campaign.campaign_id, campaign.opens_at, campaign.closed_at)
    rows = await session.execute(query)
    return {r.campaign_id: KnownCampaign(r.campaign_id, r.opens_at, r.closed_at) for r in rows}


def counting_campaigns(known: dict[str, KnownCampaign], at: datetime) -> list[str]:
    """Return the campaigns a certification at `at` counts for (open, or awaiting late ones)."""
    window = current_window(at).campaign_id
    row = known.get(window)
    ids = [] if row is not None and row.closed_at is not None and row.closed_at <= at else [window]
    adhoc = sorted(
        c.campaign_id
        for c in known.values()
        if c.opens_at is not None
        and c.opens_at <= at
        and (c.closed_at is None or c.closed_at > at)
        and not c.campaign_id.startswith("window-")
    )
    return ids + adhoc


async def campaign_opened(event: CampaignOpened, session: AsyncSession) -> None:
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


async def deadline_extended(event: CampaignDeadlineExtended, session: AsyncSession) -> None:
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


async def campaign_closed(event: CampaignClosed, session: AsyncSession) -> None:
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


__all__ = [
    "KnownCampaign",
    "campaign_closed",
    "campaign_opened",
    "counting_campaigns",
    "deadline_extended",
    "known_campaigns",
]
