"""The regular compliance windows in Athens time (registry_sync.windows), DST included.

December is winter time (UTC+2), June summer time (UTC+3); a window's deadline is the Athens
midnight that ends its last day, and the last closed window flips exactly at that instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from registry_sync.windows import last_closed_regular_window, regular_window_bounds

ATHENS = ZoneInfo("Europe/Athens")
SECOND = timedelta(seconds=1)


def test_the_december_window_is_in_winter_time() -> None:
    assert regular_window_bounds("window-2026-12") == (
        datetime(2026, 11, 30, 22, 0, tzinfo=UTC),  # 1 Dec 00:00 Athens (UTC+2)
        datetime(2026, 12, 31, 22, 0, tzinfo=UTC),  # 1 Jan 2027 00:00 Athens
    )


def test_the_june_window_is_in_summer_time() -> None:
    assert regular_window_bounds("window-2027-06") == (
        datetime(2027, 5, 31, 21, 0, tzinfo=UTC),  # 1 Jun 00:00 Athens (UTC+3)
        datetime(2027, 6, 30, 21, 0, tzinfo=UTC),  # 1 Jul 00:00 Athens
    )


def test_bounds_are_aware_utc_instants_at_athens_midnight() -> None:
    bounds = regular_window_bounds("window-2027-06")
    assert bounds is not None
    for instant in bounds:
        assert instant.utcoffset() == timedelta(0)
        local = instant.astimezone(ATHENS)
        assert (local.hour, local.minute, local.second) == (0, 0, 0)


@pytest.mark.parametrize(
    "campaign_id",
    [
        "window-2026-07",
        "window-2026-6",
        "window-26-12",
        "window-2026-12-extra",
        "adhoc-2026-12",
        "2026-12",
        "",
        "window-abcd-12",
    ],
)
def test_anything_else_is_not_a_regular_window(campaign_id: str) -> None:
    assert regular_window_bounds(campaign_id) is None


def at_athens(  # noqa: PLR0917
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ATHENS).astimezone(UTC)


def test_on_new_years_eve_the_december_window_has_not_closed_yet() -> None:
    assert last_closed_regular_window(at_athens(2026, 12, 31, 23, 59, 59)) == (
        "window-2026-06",
        datetime(2026, 6, 30, 21, 0, tzinfo=UTC),
    )


def test_at_athens_midnight_of_new_year_the_december_window_is_closed() -> None:
    assert last_closed_regular_window(at_athens(2027, 1, 1, 0, 0, 0)) == (
        "window-2026-12",
        datetime(2026, 12, 31, 22, 0, tzinfo=UTC),
    )
    # Still the last one closed through the spring (the DST change of March included).
    assert last_closed_regular_window(at_athens(2027, 3, 28, 4, 0, 0))[0] == "window-2026-12"
    assert last_closed_regular_window(at_athens(2027, 6, 30, 23, 59, 59))[0] == "window-2026-12"


def test_the_june_window_closes_at_the_athens_midnight_that_ends_30_june() -> None:
    deadline = datetime(2027, 6, 30, 21, 0, tzinfo=UTC)
    assert last_closed_regular_window(deadline - SECOND)[0] == "window-2026-12"
    assert last_closed_regular_window(deadline) == ("window-2027-06", deadline)
    assert last_closed_regular_window(at_athens(2027, 11, 30, 12, 0, 0))[0] == "window-2027-06"


def test_the_instant_is_what_counts_not_the_utc_date() -> None:
    # 31 Dec 22:30 UTC is already 1 Jan in Athens: the December window has closed.
    assert last_closed_regular_window(datetime(2026, 12, 31, 22, 30, tzinfo=UTC))[0] == (
        "window-2026-12"
    )
    # 30 Jun 21:30 UTC is 1 Jul in Athens: June has closed.
    assert last_closed_regular_window(datetime(2027, 6, 30, 21, 30, tzinfo=UTC))[0] == (
        "window-2027-06"
    )
