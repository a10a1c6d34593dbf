"""What the public reports keep between requests while the unit directory and campaigns stand still.

Why this exists: the filter form's choices (regions, directorates) and the list of unit types are
DISTINCTs over every unit, about 5 ms a request together, yet they change only when a units event
is projected; a campaign with its extensions is two more queries per request, and changes only
with a campaign event. The projector renews the "units" and "campaigns" change marks in the same
transaction as any change of those parts (`compliance.views.change_marks_view`); a process keeps
what it read under the marks it read *before* reading it (both marks in one query per request),
so an answer never shows a directory or a campaign older than the last batch applied (at worst,
values newer than their key are read once more on the next request).

Usage::

    memo = TreeMemo()                       # one per process (the API keeps it on app.state)
    choices = await memo.choices(session)   # TreeChoices: unit_types, regions, directorates
    choices, campaign = await memo.choices_and_campaign(session, "window-2026-12")
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from compliance import views
from compliance.windows import Campaign
from shared.greek import sort_key

_UNITS_MARK = select(views.change_marks_view.c.token).where(
    views.change_marks_view.c.part == views.UNITS_PART
)
# Every mark in one round trip (the table holds one row per part: a handful).
_MARKS = select(views.change_marks_view.c.part, views.change_marks_view.c.token)
# Campaigns kept per campaigns mark: the current windows and the ad-hoc campaigns people ask for.
MAX_CAMPAIGNS_KEPT = 64
# Per-group totals kept per units mark: one per filter asked (a few hundred bytes to a few KiB).
MAX_TOTALS_KEPT = 1024


# Per group of a report's counts: (region_id, region_name, directorate_id, directorate_name, units
# in scope), for one campaign scope, day and set of filters (`compliance.reports.totals_key`).
Totals = tuple[tuple[str | None, str | None, str | None, str | None, int], ...]


@dataclass(frozen=True, slots=True)
class TreeChoices:
    """What depends on the unit directory alone, in Greek order: the filter form's choices."""

    unit_types: tuple[str, ...]
    regions: tuple[tuple[str, str], ...]  # (id, name)
    directorates: tuple[tuple[str, str], ...]


async def units_mark(session: AsyncSession) -> UUID | None:
    """Return the unit directory's change mark (None before the first unit is projected)."""
    token: UUID | None = (await session.execute(_UNITS_MARK)).scalar_one_or_none()
    return token


async def unit_types(session: AsyncSession) -> tuple[str, ...]:
    """Return the unit types of the units that are ever asked to certify, in Greek order."""
    unit = views.units_view.c
    rows = await session.execute(select(unit.unit_type).where(~unit.is_administrative).distinct())
    return tuple(sorted((r.unit_type for r in rows), key=sort_key))


async def region_and_directorate_options(
    session: AsyncSession,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return the (id, name) choices of the filter form, in Greek order."""
    unit = views.units_view.c
    rows = (
        await session.execute(
            select(unit.region_id, unit.region_name, unit.directorate_id, unit.directorate_name)
            .where(~unit.is_administrative, unit.region_id.is_not(None))
            .distinct()
        )
    ).all()
    regions = {(r.region_id, r.region_name or r.region_id) for r in rows}
    directorates = {
        (r.directorate_id, r.directorate_name or r.directorate_id) for r in rows if r.directorate_id
    }
    return (
        sorted(regions, key=lambda pair: (sort_key(pair[1]), pair[0])),
        sorted(directorates, key=lambda pair: (sort_key(pair[1]), pair[0])),
    )


class TreeMemo:
    """The last `TreeChoices` read, with the units mark it was read under; campaigns likewise."""

    def __init__(self) -> None:
        self._kept: tuple[UUID | None, TreeChoices] | None = None
        self._campaigns_mark: UUID | None = None
        self._campaigns: dict[str, Campaign | None] = {}
        # Units in scope per group, per campaign scope, day and filters (`reports.totals_key`):
        # a function of the unit directory alone, so kept under its mark like the choices.
        self.totals: dict[Hashable, Totals] = {}

    async def choices(self, session: AsyncSession) -> TreeChoices:
        """Return the choices, read again only if the unit directory changed since last time."""
        return await self._choices(session, await units_mark(session))

    async def choices_and_campaign(
        self, session: AsyncSession, campaign_id: str
    ) -> tuple[TreeChoices, Campaign | None]:
        """Return the choices and a campaign (None if unknown), each read again only if changed."""
        marks: dict[str, UUID] = dict((await session.execute(_MARKS)).tuples().all())
        choices = await self._choices(session, marks.get(views.UNITS_PART))
        mark = marks.get(views.CAMPAIGNS_PART)
        if mark != self._campaigns_mark or len(self._campaigns) >= MAX_CAMPAIGNS_KEPT:
            self._campaigns = {}
            self._campaigns_mark = mark
        if campaign_id in self._campaigns:
            return choices, self._campaigns[campaign_id]
        campaign = self._campaigns[campaign_id] = await views.load_campaign(session, campaign_id)
        return choices, campaign

    async def _choices(self, session: AsyncSession, mark: UUID | None) -> TreeChoices:
        kept = self._kept
        if kept is not None and kept[0] == mark:
            if len(self.totals) >= MAX_TOTALS_KEPT:
                self.totals.clear()
            return kept[1]
        self.totals.clear()
        regions, directorates = await region_and_directorate_options(session)
        fresh = TreeChoices(await unit_types(session), tuple(regions), tuple(directorates))
        self._kept = (mark, fresh)
        return fresh


__all__ = [
    "Totals",
    "TreeChoices",
    "TreeMemo",
    "region_and_directorate_options",
    "unit_types",
    "units_mark",
]
