"""The regular compliance windows, as registry-sync needs them: when each one closed.

Why this exists: after each window closes, the certified report of every body is sent. Ad-hoc
campaigns close by an event (CampaignClosed); the two regular windows a year (1–30 June and 1–31
December, Europe/Athens) exist by rule, so their closing instant is computed here from the injected
clock. The campaign ids are the compliance service's (``window-2026-12``); the rule is the one
`compliance.windows` implements, restated because services do not import each other.

Usage::

    last_closed_regular_window(clock.now())   # ("window-2026-06", 2026-06-30T21:00Z)
    regular_window_bounds("window-2026-12")   # (opens_at, deadline_at), aware UTC
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.clock import athens_date, athens_midnight

PREFIX = "window-"
JUNE = 6
DECEMBER = 12


def regular_window_bounds(campaign_id: str) -> tuple[datetime, datetime] | None:
    """Return (opens_at, deadline_at) of a regular window id, else None (an ad-hoc campaign)."""
    rest = campaign_id.removeprefix(PREFIX)
    year_text, _, month_text = rest.partition("-")
    if (
        not campaign_id.startswith(PREFIX)
        or not (year_text.isdigit() and len(year_text) == 4)  # noqa: PLR2004
        or month_text not in ("06", "12")
    ):
        return None
    year, month = int(year_text), int(month_text)
    last = date(year, 12, 31) if month == DECEMBER else date(year, 6, 30)
    return athens_midnight(date(year, month, 1)), athens_midnight(last + timedelta(days=1))


def last_closed_regular_window(now: datetime) -> tuple[str, datetime]:
    """Return the id and deadline of the latest regular window whose deadline has passed."""
    day = athens_date(now)
    candidates = [
        (f"{PREFIX}{year:04d}-{month:02d}", bounds[1])
        for year in (day.year - 1, day.year)
        for month in (JUNE, DECEMBER)
        if (bounds := regular_window_bounds(f"{PREFIX}{year:04d}-{month:02d}")) is not None
        and bounds[1] <= now
    ]
    return max(candidates, key=lambda candidate: candidate[1])
