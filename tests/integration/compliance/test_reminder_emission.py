"""Reminder ticks on real PostgreSQL: who gets which reminder on which day, and each only once.

The compliance views are folded from generated events by the real projector (reminder_kit); the
scheduler appends through the real event store and its outbox, so "once" is the store's own
`UNIQUE(stream_id, version)` check at `expected_version=0`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest_asyncio
from sqlalchemy import text

from shared.clock import ATHENS, FixedClock, athens_midnight
from shared.events.compliance import (
    CampaignDeadlineExtended,
    CampaignOpened,
    ComplianceState,
    ReminderStep,
    ScopeKind,
)
from tests.conftest import DatabaseFactory
from tests.integration.compliance.reminder_kit import (
    DIRECTORATE,
    OTHER_DIRECTORATE,
    ComplianceDb,
    by_stream,
    certified,
    small_tree,
)

SCHOOLS = ("0160075", "0160076", "0160077", "0160078")
PRIMARY = ("9160001",)
DECEMBER = "window-2026-12"
ADMIN_AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def at_eight(day: date) -> datetime:
    """Return 08:00 Athens on `day` (the crontab's default time)."""
    return datetime(day.year, day.month, day.day, 8, 0, tzinfo=ATHENS)


@pytest_asyncio.fixture(loop_scope="session")
async def db(fresh_database: DatabaseFactory) -> AsyncIterator[ComplianceDb]:
    database = await ComplianceDb.create(fresh_database("reminders"))
    # One database per session: start every test from empty event and view tables.
    async with database.engine.begin() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables"
                    " WHERE schemaname = 'public' AND (tablename LIKE 'compliance\\_%'"
                    " OR tablename IN ('events', 'outbox', 'projection_offsets'))"
                )
            )
        ).scalar_one()
        await connection.execute(text(f"TRUNCATE {tables}"))
    await database.fold(*small_tree(SCHOOLS, PRIMARY))
    try:
        yield database
    finally:
        await database.close()


async def test_fourteen_days_before_the_deadline_each_uncertified_unit_gets_one_reminder(
    db: ComplianceDb,
) -> None:
    await db.fold(certified(SCHOOLS[0], at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC)))
    clock = FixedClock(at_eight(date(2026, 12, 17)))
    scheduler = await db.scheduler(clock)

    report = await scheduler.tick()

    assert report.due_on == date(2026, 12, 17)
    assert DECEMBER in report.campaigns
    assert (report.due, report.emitted, report.already_sent) == (4, 4, 0)
    found = await db.reminders()
    assert sorted(event.unit_id for _, event in found) == sorted([*SCHOOLS[1:], *PRIMARY])
    for recorded, event in found:
        assert event.step is ReminderStep.DAYS_14
        assert event.days_left == 14
        assert event.deadline_on == date(2026, 12, 31)
        assert event.due_on == date(2026, 12, 17)
        assert event.recipient_unit_ids == (event.unit_id,)
        assert event.state is ComplianceState.NOT_STARTED
        assert recorded.version == 1
        assert recorded.stream_id == f"reminder:{DECEMBER}:{event.unit_id}:14_days"
        assert recorded.source == "/ictcadastre/compliance"
        assert recorded.actor is not None
        assert recorded.actor.user_id == "compliance-scheduler"
    mailer_view = next(event for _, event in found if event.unit_id == SCHOOLS[1])
    assert mailer_view.email == f"{SCHOOLS[1]}@sch.gr"
    assert mailer_view.unit_name == "2ο ΓΥΜΝΑΣΙΟ ΑΓΡΙΝΙΟΥ"
    assert mailer_view.campaign_title == "Απογραφή Δεκεμβρίου 2026"
    assert mailer_view.directorate_id == DIRECTORATE


async def test_a_second_tick_the_same_day_or_the_next_emits_nothing_more(
    db: ComplianceDb,
) -> None:
    clock = FixedClock(at_eight(date(2026, 12, 17)))
    scheduler = await db.scheduler(clock)
    first = await scheduler.tick()
    again = await scheduler.tick()
    clock.set(at_eight(date(2026, 12, 18)))  # 13 days left: still the 14-day step
    next_day = await scheduler.tick()

    assert first.emitted == 5
    assert (again.due, again.emitted, again.already_sent) == (5, 0, 5)
    assert (next_day.due, next_day.emitted) == (5, 0)
    assert set(by_stream(await db.reminders()).values()) == {1}
    assert len(await db.reminders()) == 5


async def test_each_step_is_sent_once_and_certifying_stops_the_next_one(db: ComplianceDb) -> None:
    clock = FixedClock(at_eight(date(2026, 12, 17)))
    scheduler = await db.scheduler(clock)
    emitted: dict[date, int] = {}
    for day in (date(2026, 12, 17), date(2026, 12, 24), date(2026, 12, 27)):
        clock.set(at_eight(day))
        emitted[day] = (await scheduler.tick()).emitted
    # Between the 7-day and the 1-day reminder, one school certifies.
    await db.fold(certified(SCHOOLS[1], at=datetime(2026, 12, 28, 12, 0, tzinfo=ATHENS)))
    for day in (date(2026, 12, 30), date(2026, 12, 31)):
        clock.set(at_eight(day))
        emitted[day] = (await scheduler.tick()).emitted

    assert emitted == {
        date(2026, 12, 17): 5,  # 14 days
        date(2026, 12, 24): 5,  # 7 days
        date(2026, 12, 27): 0,  # 4 days: the 7-day step was sent already
        date(2026, 12, 30): 4,  # 1 day, not to the unit that certified
        date(2026, 12, 31): 0,  # the last day: the 1-day step was sent already
    }
    steps = by_stream(await db.reminders())
    assert set(steps.values()) == {1}
    assert f"reminder:{DECEMBER}:{SCHOOLS[1]}:1_day" not in steps
    assert f"reminder:{DECEMBER}:{SCHOOLS[1]}:7_days" in steps


async def test_once_overdue_the_directorate_is_reminded_once_per_unit(db: ComplianceDb) -> None:
    await db.fold(certified(SCHOOLS[0], at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC)))
    clock = FixedClock(at_eight(date(2027, 1, 2)))
    scheduler = await db.scheduler(clock)

    first = await scheduler.tick()
    clock.set(at_eight(date(2027, 1, 9)))
    week_later = await scheduler.tick()

    assert (first.emitted, week_later.emitted) == (4, 0)
    found = await db.reminders()
    assert {event.step for _, event in found} == {ReminderStep.OVERDUE}
    recipients = {event.unit_id: event.recipient_unit_ids for _, event in found}
    assert recipients == {
        **dict.fromkeys(SCHOOLS[1:], (DIRECTORATE,)),
        PRIMARY[0]: (OTHER_DIRECTORATE,),
    }
    assert {event.days_left for _, event in found} == {-2}
    assert {event.state for _, event in found} == {ComplianceState.MISSED}


async def test_a_directorate_extension_moves_its_units_reminders(db: ComplianceDb) -> None:
    extension = CampaignDeadlineExtended(
        campaign_id=DECEMBER,
        scope_kind=ScopeKind.DIRECTORATE,
        scope_unit_id=OTHER_DIRECTORATE,
        deadline_at=athens_midnight(date(2027, 1, 16)),
        deadline_on=date(2027, 1, 15),
        extended_at=ADMIN_AT,
    )
    await db.fold((extension, f"campaign:{DECEMBER}", "/ictcadastre/compliance", ADMIN_AT))
    scheduler = await db.scheduler(FixedClock(at_eight(date(2027, 1, 1))))

    await scheduler.tick()

    steps = {event.unit_id: (event.step, event.days_left) for _, event in await db.reminders()}
    assert steps[PRIMARY[0]] == (ReminderStep.DAYS_14, 14)  # its own deadline: 15 January
    assert steps[SCHOOLS[0]] == (ReminderStep.OVERDUE, -1)


async def test_an_adhoc_campaign_gets_its_own_reminders(db: ComplianceDb) -> None:
    opened = CampaignOpened(
        campaign_id="adhoc-tablets-2027",
        title="Καταγραφή tablets 2027",
        opens_at=athens_midnight(date(2027, 2, 1)),
        deadline_at=athens_midnight(date(2027, 3, 1)),
        deadline_on=date(2027, 2, 28),
        scope_kind=ScopeKind.UNIT_TYPE,
        scope_value="ΔΗΜΟΤΙΚΟ",
    )
    await db.fold((opened, "campaign:adhoc-tablets-2027", "/ictcadastre/compliance", ADMIN_AT))
    scheduler = await db.scheduler(FixedClock(at_eight(date(2027, 2, 21))))

    report = await scheduler.tick()

    assert report.campaigns == ("window-2026-12", "adhoc-tablets-2027")
    adhoc = [e for _, e in await db.reminders() if e.campaign_id == "adhoc-tablets-2027"]
    assert [(e.unit_id, e.step) for e in adhoc] == [(PRIMARY[0], ReminderStep.DAYS_7)]


async def test_concurrent_schedulers_emit_each_reminder_once(db: ComplianceDb) -> None:
    instant = at_eight(date(2026, 12, 17))
    # Five processes tick at once, in small batches so that their batches collide.
    schedulers = [await db.scheduler(FixedClock(instant), batch_size=2) for _ in range(5)]

    reports = await asyncio.gather(*(s.tick() for s in schedulers))

    assert sum(r.emitted for r in reports) == 5
    assert all(r.due == 5 for r in reports)
    counts = by_stream(await db.reminders())
    assert len(counts) == 5
    assert set(counts.values()) == {1}


async def test_reminders_go_to_the_outbox_with_the_event(db: ComplianceDb) -> None:
    scheduler = await db.scheduler(FixedClock(at_eight(date(2026, 12, 17))))
    await scheduler.tick()
    async with db.engine.connect() as connection:
        pending = (
            await connection.execute(
                text(
                    "SELECT e.stream_id FROM outbox o JOIN events e USING (position)"
                    " WHERE e.type = 'ReminderDue'"
                )
            )
        ).scalars()
        assert sorted(pending) == sorted(recorded.stream_id for recorded, _ in await db.reminders())
