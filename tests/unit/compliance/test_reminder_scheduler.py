"""The reminder scheduler's pure parts: the events it writes, its streams, its clock and its timer.

No infrastructure: the store and the faust worker are exercised in
tests/integration/compliance/test_reminder_*.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from compliance.scheduler import (
    EUROPE_ATHENS,
    SchedulerSettings,
    ShiftedClock,
    create_faust_app,
    next_fire,
    reminder_event,
    stream_of,
    tick_correlation_id,
)
from compliance.views import ReminderTarget
from shared.clock import ATHENS, FixedClock, athens_date
from shared.events.base import decode
from shared.events.compliance import ComplianceState, ReminderStep

DAILY = "0 8 * * *"


def target(step: ReminderStep = ReminderStep.DAYS_14, **changes: object) -> ReminderTarget:
    values: dict[str, object] = {
        "unit_id": "0551010",
        "unit_name": "1ο Γυμνάσιο Αθηνών",
        "unit_type": "ΓΥΜΝΑΣΙΟ",
        "mm_id": "1000451",
        "email": "mail@1gym-athin.att.sch.gr",
        "campaign_id": "window-2026-12",
        "campaign_title": "Απογραφή Δεκεμβρίου 2026",
        "step": step,
        "state": ComplianceState.NOT_STARTED,
        "deadline_at": datetime(2026, 12, 31, 22, 0, tzinfo=UTC),
        "deadline_on": date(2026, 12, 31),
        "days_left": 14,
        "recipient_unit_ids": ("0551010",),
        "directorate_id": "0551000",
        "directorate_name": "ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ",
        "region_id": "0500000",
    }
    values.update(changes)
    return ReminderTarget(**values)  # type: ignore[arg-type]  # a test builder over typed fields


def settings(**values: object) -> SchedulerSettings:
    return SchedulerSettings(
        database_url="postgresql+psycopg://x:x@127.0.0.1:1/x",
        kafka_bootstrap_servers="127.0.0.1:1,127.0.0.1:2",
        port=0,
        **values,  # type: ignore[arg-type]  # pydantic validates the overrides
    )


# --- the events -------------------------------------------------------------------------------


def test_reminder_carries_what_a_mailer_needs_and_the_day_it_is_for() -> None:
    event = reminder_event(target(), due_on=date(2026, 12, 17))
    assert event.due_on == date(2026, 12, 17)
    assert (event.unit_id, event.unit_name, event.email) == (
        "0551010",
        "1ο Γυμνάσιο Αθηνών",
        "mail@1gym-athin.att.sch.gr",
    )
    assert (event.campaign_title, event.deadline_on, event.days_left) == (
        "Απογραφή Δεκεμβρίου 2026",
        date(2026, 12, 31),
        14,
    )
    assert event.recipient_unit_ids == ("0551010",)
    # The wire form decodes back to the same event (the mailer reads it from the topic).
    assert decode("ReminderDue", 1, event.payload()) == event


def test_overdue_reminder_goes_to_the_directorate() -> None:
    overdue = target(
        ReminderStep.OVERDUE,
        state=ComplianceState.MISSED,
        days_left=-2,
        recipient_unit_ids=("0551000",),
    )
    event = reminder_event(overdue, due_on=date(2027, 1, 2))
    assert event.step is ReminderStep.OVERDUE
    assert event.recipient_unit_ids == ("0551000",)
    assert event.directorate_name == "ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ"


def test_each_unit_campaign_and_step_has_its_own_stream() -> None:
    steps = list(ReminderStep)
    streams = {stream_of(reminder_event(target(step), due_on=date(2026, 12, 17))) for step in steps}
    assert len(streams) == len(steps)
    assert stream_of(reminder_event(target(), due_on=date(2026, 12, 17))) == (
        "reminder:window-2026-12:0551010:14_days"
    )
    # The day is not part of it: the same step found again on a later day is the same reminder.
    assert stream_of(reminder_event(target(), due_on=date(2026, 12, 17))) == stream_of(
        reminder_event(target(), due_on=date(2026, 12, 18))
    )


def test_reminders_of_one_tick_share_a_stable_correlation_id() -> None:
    first = tick_correlation_id("window-2026-12", date(2026, 12, 17))
    assert first == tick_correlation_id("window-2026-12", date(2026, 12, 17))
    assert first != tick_correlation_id("window-2026-12", date(2026, 12, 18))
    assert first != tick_correlation_id("adhoc-tablets", date(2026, 12, 17))


def test_reminder_rejects_an_empty_recipient_list() -> None:
    with pytest.raises(ValueError, match="recipient_unit_ids"):
        reminder_event(target(recipient_unit_ids=()), due_on=date(2026, 12, 17))


# --- the clock --------------------------------------------------------------------------------


def test_shifted_clock_starts_at_the_given_instant_and_keeps_pace() -> None:
    wall = FixedClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    clock = ShiftedClock(datetime(2026, 12, 17, 7, 59, 30, tzinfo=ATHENS), base=wall)
    assert clock.now() == datetime(2026, 12, 17, 5, 59, 30, tzinfo=UTC)
    wall.advance(timedelta(seconds=45))
    assert clock.now() == datetime(2026, 12, 17, 6, 0, 15, tzinfo=UTC)
    assert clock.today() == date(2026, 12, 17)


def test_shifted_clock_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        ShiftedClock(datetime(2026, 12, 17, 8, 0))  # noqa: DTZ001  (the point of the test)


# --- the timer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "fires_at_utc"),
    [
        # Winter (UTC+2) and summer (UTC+3): 08:00 Athens both times.
        (datetime(2026, 12, 16, 9, 0, tzinfo=ATHENS), datetime(2026, 12, 17, 6, 0, tzinfo=UTC)),
        (datetime(2026, 6, 15, 9, 0, tzinfo=ATHENS), datetime(2026, 6, 16, 5, 0, tzinfo=UTC)),
        # A minute before the tick on the last day of the December window.
        (datetime(2026, 12, 31, 7, 59, tzinfo=ATHENS), datetime(2026, 12, 31, 6, 0, tzinfo=UTC)),
    ],
)
def test_daily_tick_fires_at_eight_in_athens(after: datetime, fires_at_utc: datetime) -> None:
    assert next_fire(DAILY, after) == fires_at_utc


@pytest.mark.xfail(
    strict=True,
    reason="croniter 5.0.1 with a zoneinfo zone keeps the start's UTC offset across a DST change:"
    " 07:00 (then 08:00 again) on the spring-forward day, 09:00 on the fall-back day",
)
@pytest.mark.parametrize(
    "after",
    [datetime(2026, 3, 28, 8, 0, 1, tzinfo=ATHENS), datetime(2026, 10, 24, 8, 0, 1, tzinfo=ATHENS)],
)
def test_daily_tick_fires_at_eight_across_a_daylight_saving_change(after: datetime) -> None:
    fired = next_fire(DAILY, after).astimezone(ATHENS)
    assert (fired.hour, fired.minute) == (8, 0)


@pytest.mark.parametrize(
    "after",
    [datetime(2026, 3, 28, 8, 0, 1, tzinfo=ATHENS), datetime(2026, 10, 24, 8, 0, 1, tzinfo=ATHENS)],
)
def test_a_mistimed_dst_tick_still_falls_on_the_right_athens_day(after: datetime) -> None:
    # Why the defect above is harmless here: a tick is keyed by its Athens date, and every fire
    # croniter computes on a DST day (early, late or twice) is on that day, not the one before.
    fired = next_fire(DAILY, after)
    again = next_fire(DAILY, fired + timedelta(seconds=1))
    day = after.date() + timedelta(days=1)
    assert athens_date(fired) == day
    assert athens_date(again) in (day, day + timedelta(days=1))


def test_seconds_field_lets_tests_fire_the_real_crontab_quickly() -> None:
    after = datetime(2026, 12, 17, 7, 59, 59, tzinfo=ATHENS)
    assert next_fire("* * * * * */2", after) - after <= timedelta(seconds=2)


# --- the faust app ----------------------------------------------------------------------------


async def test_faust_app_ticks_in_athens_on_the_configured_brokers() -> None:
    async def tick() -> None:
        return None

    app = create_faust_app(settings(scheduler_app_id="compliance-scheduler-unit"), tick)
    assert app.conf.id == "compliance-scheduler-unit"
    assert app.conf.timezone is EUROPE_ATHENS
    assert [str(url) for url in app.conf.broker] == ["kafka://127.0.0.1:1", "kafka://127.0.0.1:2"]
    assert app.conf.web_enabled is False


def test_scheduler_settings_default_to_eight_oclock_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings().reminder_cron == DAILY
    monkeypatch.setenv("COMPLIANCE_REMINDER_CRON", "30 7 * * *")
    monkeypatch.setenv("COMPLIANCE_SCHEDULER_TICK_ON_START", "false")
    configured = SchedulerSettings()
    assert configured.reminder_cron == "30 7 * * *"
    assert configured.scheduler_tick_on_start is False
