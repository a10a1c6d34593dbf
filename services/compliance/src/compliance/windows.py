"""The compliance calendar: regular windows, campaigns and each unit's deadline, in Europe/Athens.

Why this exists: every unit must update and certify its inventory in each regular window, 1–31
December and 1–30 June, and in any ad-hoc campaign the Ministry opens. Whether a certification was
in time, which campaign a change belongs to and how many days are left are calendar rules in
Athens local time; they live here, in one pure module, tested around their edges (STYLE.md habit 6).

Usage::

    june, december = regular_windows(2026)
    window_containing(datetime(2026, 12, 1, 0, 0, tzinfo=ATHENS))   # december
    current_window(now)                       # the latest regular window opened at or before now
    deadline_of(campaign, UnitScope(region_id="...", directorate_id="..."))

Notes:
- Boundaries are local midnights computed per date through zoneinfo, so a deadline across a
  daylight-saving change is still "midnight in Athens" (UTC+3 in summer, UTC+2 in winter).
- Intervals are half-open: a window is open on [opens_at, deadline_at); 23:59:59.999999 on the
  last day is inside, 00:00:00 of the next day is not.
- A regular window stays *open for late certifications* until the next one opens (`closes_at`):
  a unit that missed December and certifies in February is "late", not "missed".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared.clock import ATHENS, athens_date, athens_midnight
from shared.events.compliance import ScopeKind

REGULAR_PREFIX = "window-"
JUNE = 6
DECEMBER = 12


@dataclass(frozen=True, slots=True)
class Extension:
    """A deadline extension for the units of one region or directorate (or all units)."""

    scope_kind: ScopeKind
    scope_id: str | None
    deadline_at: datetime


@dataclass(frozen=True, slots=True)
class Campaign:
    """A period in which units must update and certify their inventory.

    `deadline_at` is exclusive (the instant the last day ends in Athens); `closes_at` is when late
    certifications stop counting for it (None: never).
    """

    campaign_id: str
    title: str
    opens_at: datetime
    deadline_at: datetime
    closes_at: datetime | None
    scope_kind: ScopeKind = ScopeKind.ALL
    scope_value: str | None = None
    is_regular: bool = False
    extensions: tuple[Extension, ...] = field(default=())

    @property
    def first_day(self) -> date:
        """Return the Athens date the campaign opens on."""
        return athens_date(self.opens_at)

    @property
    def last_day(self) -> date:
        """Return the last Athens date before the (base) deadline."""
        return last_day_before(self.deadline_at)


@dataclass(frozen=True, slots=True)
class UnitScope:
    """Where a unit sits, as far as campaign scopes and extensions are concerned."""

    unit_type: str | None = None
    region_id: str | None = None
    directorate_id: str | None = None


def deadline_after_day(last_day: date) -> datetime:
    """Return the exclusive deadline instant of a campaign whose last day is `last_day` (UTC)."""
    return athens_midnight(last_day + timedelta(days=1))


def last_day_before(deadline_at: datetime) -> date:
    """Return the last Athens date on which a deadline instant still allows certifying."""
    return athens_date(deadline_at - timedelta(microseconds=1))


def _regular(year: int, month: int) -> Campaign:
    opens_on = date(year, month, 1)
    last = date(year, 12, 31) if month == DECEMBER else date(year, 6, 30)
    following = date(year + 1, JUNE, 1) if month == DECEMBER else date(year, DECEMBER, 1)
    label = "Δεκεμβρίου" if month == DECEMBER else "Ιουνίου"
    return Campaign(
        campaign_id=f"{REGULAR_PREFIX}{year:04d}-{month:02d}",
        title=f"Απογραφή {label} {year}",
        opens_at=athens_midnight(opens_on),
        deadline_at=deadline_after_day(last),
        closes_at=athens_midnight(following),
        is_regular=True,
    )


def regular_windows(year: int) -> tuple[Campaign, Campaign]:
    """Return the year's two regular windows: 1–30 June and 1–31 December (Athens)."""
    return _regular(year, JUNE), _regular(year, DECEMBER)


def regular_window(campaign_id: str) -> Campaign | None:
    """Return the regular window named `campaign_id` (e.g. ``window-2026-12``), else None."""
    if not campaign_id.startswith(REGULAR_PREFIX):
        return None
    rest = campaign_id.removeprefix(REGULAR_PREFIX)
    year_text, _, month_text = rest.partition("-")
    if not (year_text.isdigit() and month_text.isdigit() and len(year_text) == 4):  # noqa: PLR2004
        return None
    month = int(month_text)
    if month not in (JUNE, DECEMBER) or f"{int(year_text):04d}-{month:02d}" != rest:
        return None
    return _regular(int(year_text), month)


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("compliance instants must be aware")
    return instant.astimezone(UTC)


def window_containing(instant: datetime) -> Campaign | None:
    """Return the regular window open at `instant` (before its deadline), else None."""
    day = athens_date(_require_aware(instant))
    if day.month == JUNE:
        return _regular(day.year, JUNE)
    if day.month == DECEMBER:
        return _regular(day.year, DECEMBER)
    return None


def current_window(instant: datetime) -> Campaign:
    """Return the latest regular window opened at or before `instant` (open, or awaiting late)."""
    day = athens_date(_require_aware(instant))
    if day.month >= DECEMBER:
        return _regular(day.year, DECEMBER)
    if day.month >= JUNE:
        return _regular(day.year, JUNE)
    return _regular(day.year - 1, DECEMBER)


def previous_windows(instant: datetime, count: int) -> list[Campaign]:
    """Return the `count` latest regular windows opened at or before `instant`, newest first."""
    windows: list[Campaign] = []
    window = current_window(instant)
    for _ in range(count):
        windows.append(window)
        window = current_window(window.opens_at - timedelta(microseconds=1))
    return windows


def covers(campaign: Campaign, unit: UnitScope) -> bool:
    """Return whether `unit` is in the campaign's scope (all units, a unit type or a region)."""
    match campaign.scope_kind:
        case ScopeKind.ALL:
            return True
        case ScopeKind.UNIT_TYPE:
            return unit.unit_type == campaign.scope_value
        case ScopeKind.REGION:
            return unit.region_id == campaign.scope_value
        case ScopeKind.DIRECTORATE:
            return unit.directorate_id == campaign.scope_value


def _extension_applies(extension: Extension, unit: UnitScope) -> bool:
    match extension.scope_kind:
        case ScopeKind.ALL:
            return True
        case ScopeKind.REGION:
            return extension.scope_id is not None and unit.region_id == extension.scope_id
        case ScopeKind.DIRECTORATE:
            return extension.scope_id is not None and unit.directorate_id == extension.scope_id
        case ScopeKind.UNIT_TYPE:
            return extension.scope_id is not None and unit.unit_type == extension.scope_id


def deadline_of(campaign: Campaign, unit: UnitScope) -> datetime:
    """Return the unit's deadline (exclusive, UTC): the latest of the base and its extensions.

    An extension only ever extends: one that names an earlier instant than the base (or than
    another applicable extension) does not shorten the unit's time.
    """
    deadline = campaign.deadline_at
    for extension in campaign.extensions:
        if _extension_applies(extension, unit) and extension.deadline_at > deadline:
            deadline = extension.deadline_at
    return deadline


def days_left(deadline_at: datetime, on: date) -> int:
    """Return the Athens days from `on` to the last day before the deadline (0 on that day)."""
    return (last_day_before(deadline_at) - on).days


__all__ = [
    "ATHENS",
    "Campaign",
    "Extension",
    "ScopeKind",
    "UnitScope",
    "covers",
    "current_window",
    "days_left",
    "deadline_after_day",
    "deadline_of",
    "last_day_before",
    "previous_windows",
    "regular_window",
    "regular_windows",
    "window_containing",
]
