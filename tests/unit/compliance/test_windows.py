"""The compliance calendar at its edges: Athens midnights, both windows, DST, leap years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from compliance.windows import (
    Campaign,
    Extension,
    UnitScope,
    covers,
    current_window,
    days_left,
    deadline_after_day,
    deadline_of,
    last_day_before,
    previous_windows,
    regular_window,
    regular_windows,
    window_containing,
)
from shared.clock import ATHENS
from shared.events.compliance import ScopeKind


def athens(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ATHENS)  # type: ignore[arg-type,misc]  # year, month, day, …


def test_the_december_window_opens_at_athens_midnight_of_1_december() -> None:
    assert window_containing(athens(2026, 11, 30, 23, 59, 59)) is None
    december = window_containing(athens(2026, 12, 1, 0, 0, 0))

    assert december is not None
    assert december.campaign_id == "window-2026-12"
    assert december.opens_at == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # UTC+2 in winter


def test_31_december_23_59_59_is_inside_and_1_january_is_not() -> None:
    december = regular_windows(2026)[1]
    last_second = athens(2026, 12, 31, 23, 59, 59, 999999).astimezone(UTC)

    assert last_second < december.deadline_at
    assert athens(2027, 1, 1).astimezone(UTC) == december.deadline_at
    assert window_containing(last_second) == december
    assert window_containing(athens(2027, 1, 1)) is None
    assert december.last_day == date(2026, 12, 31)


def test_the_june_window_runs_1_to_30_june_in_summer_time() -> None:
    june = regular_windows(2026)[0]

    assert june.opens_at == datetime(2026, 5, 31, 21, 0, tzinfo=UTC)  # UTC+3 in summer
    assert june.deadline_at == datetime(2026, 6, 30, 21, 0, tzinfo=UTC)
    assert window_containing(athens(2026, 5, 31, 23, 59, 59)) is None
    assert window_containing(athens(2026, 6, 30, 23, 59, 59)) == june
    assert window_containing(athens(2026, 7, 1)) is None
    assert (june.first_day, june.last_day) == (date(2026, 6, 1), date(2026, 6, 30))


def test_a_regular_window_awaits_late_certifications_until_the_next_opens() -> None:
    june, december = regular_windows(2026)

    assert june.closes_at == december.opens_at
    assert current_window(athens(2027, 3, 1)) == december
    assert current_window(athens(2026, 11, 30, 23, 59, 59)) == june
    assert [w.campaign_id for w in previous_windows(athens(2027, 6, 1), 3)] == [
        "window-2027-06",
        "window-2026-12",
        "window-2026-06",
    ]


def test_a_deadline_across_the_october_dst_change_ends_at_local_midnight() -> None:
    # Summer time ends on 25 October 2026: the last day 31 October ends at 22:00 UTC (UTC+2),
    # while a campaign opened on 20 October opened at 21:00 UTC (UTC+3).
    deadline = deadline_after_day(date(2026, 10, 31))

    assert deadline == datetime(2026, 10, 31, 22, 0, tzinfo=UTC)
    assert athens(2026, 10, 20).astimezone(UTC) == datetime(2026, 10, 19, 21, 0, tzinfo=UTC)
    assert last_day_before(deadline) == date(2026, 10, 31)
    assert deadline - athens(2026, 10, 20).astimezone(UTC) == timedelta(days=12, hours=1)


def test_a_deadline_across_the_march_dst_change_ends_at_local_midnight() -> None:
    # Summer time starts on 29 March 2026 (03:00 → 04:00): that day has 23 hours.
    deadline = deadline_after_day(date(2026, 3, 29))

    assert deadline == datetime(2026, 3, 29, 21, 0, tzinfo=UTC)
    assert deadline - deadline_after_day(date(2026, 3, 28)) == timedelta(hours=23)


@pytest.mark.parametrize(("year", "is_leap"), [(2027, False), (2028, True)])
def test_leap_years_keep_the_december_window_awaiting_late_certifications(
    year: int, is_leap: bool
) -> None:
    december = regular_windows(year - 1)[1]
    last_of_february = date(year, 2, 29 if is_leap else 28)

    assert current_window(athens(year, 2, last_of_february.day, 23, 59, 59)) == december
    assert current_window(athens(year, 5, 31, 23, 59, 59)) == december
    assert current_window(athens(year, 6, 1)) == regular_windows(year)[0]
    assert last_day_before(deadline_after_day(last_of_february)) == last_of_february
    assert deadline_after_day(last_of_february) == athens(year, 3, 1).astimezone(UTC)


def test_regular_window_names_are_parsed_strictly() -> None:
    assert regular_window("window-2026-12") == regular_windows(2026)[1]
    assert regular_window("window-2026-6") is None
    assert regular_window("window-2026-03") is None
    assert regular_window("adhoc-2026-12") is None


def test_deadline_of_takes_the_latest_applicable_extension() -> None:
    base = regular_windows(2026)[1]
    campaign = Campaign(
        campaign_id=base.campaign_id,
        title=base.title,
        opens_at=base.opens_at,
        deadline_at=base.deadline_at,
        closes_at=base.closes_at,
        is_regular=True,
        extensions=(
            Extension(ScopeKind.REGION, "R1", deadline_after_day(date(2027, 1, 10))),
            Extension(ScopeKind.DIRECTORATE, "D1", deadline_after_day(date(2027, 1, 15))),
            Extension(ScopeKind.DIRECTORATE, "D9", deadline_after_day(date(2026, 12, 20))),
        ),
    )

    def last_day(unit: UnitScope) -> date:
        return last_day_before(deadline_of(campaign, unit))

    assert last_day(UnitScope(region_id="R1", directorate_id="D1")) == date(2027, 1, 15)
    assert last_day(UnitScope(region_id="R1", directorate_id="D2")) == date(2027, 1, 10)
    assert last_day(UnitScope(region_id="R2", directorate_id="D3")) == date(2026, 12, 31)
    # An "extension" to an earlier day never shortens the unit's time.
    assert last_day(UnitScope(region_id="R2", directorate_id="D9")) == date(2026, 12, 31)


def test_days_left_counts_to_the_last_day() -> None:
    deadline = regular_windows(2026)[1].deadline_at

    assert days_left(deadline, date(2026, 12, 17)) == 14
    assert days_left(deadline, date(2026, 12, 31)) == 0
    assert days_left(deadline, date(2027, 1, 2)) == -2


def test_a_campaign_covers_its_scope_only() -> None:
    base = regular_windows(2026)[1]
    by_type = Campaign(
        "adhoc-x", "x", base.opens_at, base.deadline_at, None, ScopeKind.UNIT_TYPE, "ΕΠΑΛ"
    )

    assert covers(by_type, UnitScope(unit_type="ΕΠΑΛ"))
    assert not covers(by_type, UnitScope(unit_type="ΓΥΜΝΑΣΙΟ"))
    assert covers(base, UnitScope())


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        window_containing(datetime(2026, 12, 1))  # noqa: DTZ001  (the point of the test)
