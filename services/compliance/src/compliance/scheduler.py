"""Compliance reminders: 14, 7 and 1 days before each unit's deadline, then to its directorate.

Why this exists: issue 6, point 5. Units that have not certified are reminded 14, 7 and 1 days
before their own deadline (extensions included) and, once overdue, their directorate is. Each
reminder is a `ReminderDue` event on `compliance.events` that carries what a mailer needs. A
faust-streaming app times the ticks with a crontab in Europe/Athens; what a tick does is plain
code over the compliance read model (`views.units_needing_reminder`) and the kernel's event store.

Usage::

    python -m compliance.scheduler [run]        # the faust worker: a tick on start, then crontab
    python -m compliance.scheduler tick [--at 2026-12-17T08:00:00+02:00]   # one tick, then exit
    python -m compliance.scheduler --now 2026-12-17T07:59:00+02:00 run     # rehearse a day

    scheduler = ReminderScheduler(store, sessions, clock=FixedClock(...))  # tests: no faust
    report = await scheduler.tick()                                        # or tick(at=instant)

Notes:
- Once only, by construction: each reminder is the first and only event of its own stream,
  `reminder:<campaign>:<unit>:<step>`, appended through the event store and its outbox with
  `expected_version=0`. A second attempt (a restarted or a second worker, a crontab that fires
  twice) gets `VersionConflictError` and is counted as already sent. Nothing is produced to Kafka
  here: the worker's outbox relay publishes what the store committed.
- A tick is keyed by the Athens *date* of its instant, not by the hour it fires at, so it may fire
  late, early, twice, or be replayed after a crash without changing what is emitted.
- croniter 5.0.1 (what faust 0.15.3's crontab uses) mis-steps across daylight-saving changes with
  a `zoneinfo` zone: from the day before, "0 8 * * *" next fires at 07:00 on the spring-forward
  day (and then again at 08:00), and at 09:00 on the fall-back day. Date-keyed ticks make that
  harmless (the 08:00 run emits nothing more); tests/unit/compliance/test_reminder_scheduler.py
  pins both the defect and its harmlessness.
- The clock is injected (`shared.clock`): `--now` shifts this process's clock for rehearsals and
  tests; it does not move faust's crontab, which follows the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

import faust
import structlog
from croniter import croniter  # type: ignore[import-untyped]  # faust's crontab dependency; no types
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from compliance import views
from compliance.settings import Settings
from compliance.windows import current_window
from shared.clock import ATHENS, Clock, SystemClock, athens_date, clock_from_env
from shared.db import create_engine, session_factory
from shared.events.compliance import ReminderDue, reminder_stream
from shared.events.envelope import Actor
from shared.eventstore import AppendContext, EventStore, VersionConflictError
from shared.logging import configure_logging
from shared.telemetry import configure_telemetry

log = structlog.get_logger(__name__)

SOURCE = "/ictcadastre/compliance"
ACTOR = Actor("compliance-scheduler", "system")
EUROPE_ATHENS: ZoneInfo = ATHENS


class SchedulerSettings(Settings):
    """The compliance settings plus the scheduler's own (``COMPLIANCE_`` prefix, like the rest)."""

    # When the daily tick fires, Athens time. croniter reads a 6th field as seconds
    # ("* * * * * */2": every 2 s), which tests use to fire the real crontab quickly.
    reminder_cron: str = "0 8 * * *"
    # The faust app id: also its consumer group and the prefix of its leader-election topic.
    scheduler_app_id: str = "compliance-scheduler"
    # faust keeps table state here; the scheduler has no tables, but faust creates the folder.
    scheduler_data_dir: str = ".local/faust"
    # Reminders appended per store transaction (a conflicting batch is redone one by one).
    reminder_batch_size: int = 200
    # Tick once as soon as the worker is ready, so a restart catches up on the day it missed.
    scheduler_tick_on_start: bool = True
    # How long the group waits for a silent member: a killed scheduler holds the leadership (and
    # delays its restarted successor's join) until this expires. faust's default is 60 s.
    scheduler_session_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did: the Athens day it was for, what it found and what it appended."""

    due_on: date
    campaigns: tuple[str, ...]
    due: int
    emitted: int
    already_sent: int
    emitted_streams: tuple[str, ...] = field(default=(), repr=False)


class ShiftedClock:
    """The wall clock moved so that it reads `start` now; it then runs at its normal pace."""

    def __init__(self, start: datetime, *, base: Clock | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        self._base = base if base is not None else SystemClock()
        self._offset = start - self._base.now()

    def now(self) -> datetime:
        """Return the shifted instant (aware UTC)."""
        return self._base.now() + self._offset

    def today(self, tz: ZoneInfo = ATHENS) -> date:
        """Return the calendar date of the shifted instant in `tz`."""
        return self.now().astimezone(tz).date()


def reminder_event(target: views.ReminderTarget, *, due_on: date) -> ReminderDue:
    """Return the `ReminderDue` for a unit the read model says needs one on `due_on`."""
    return ReminderDue(
        unit_id=target.unit_id,
        unit_name=target.unit_name,
        unit_type=target.unit_type,
        mm_id=target.mm_id,
        email=target.email,
        campaign_id=target.campaign_id,
        campaign_title=target.campaign_title,
        step=target.step,
        state=target.state,
        deadline_at=target.deadline_at,
        deadline_on=target.deadline_on,
        days_left=target.days_left,
        due_on=due_on,
        recipient_unit_ids=target.recipient_unit_ids,
        directorate_id=target.directorate_id,
        directorate_name=target.directorate_name,
        region_id=target.region_id,
    )


def stream_of(event: ReminderDue) -> str:
    """Return the stream that holds this reminder and nothing else."""
    return reminder_stream(event.campaign_id, event.unit_id, event.step)


def tick_correlation_id(campaign_id: str, due_on: date) -> UUID:
    """Return the correlation id shared by every reminder of one campaign and day (stable)."""
    return uuid5(NAMESPACE_URL, f"ictcadastre:compliance:reminders:{campaign_id}:{due_on}")


def next_fire(cron: str, after: datetime, tz: ZoneInfo = ATHENS) -> datetime:
    """Return when faust's crontab fires next after `after`, as its croniter computes it."""
    return croniter(cron, start_time=after.astimezone(tz)).get_next(datetime)  # type: ignore[no-any-return]  # croniter ships no types


def _chunks(items: Sequence[ReminderDue], size: int) -> Iterable[Sequence[ReminderDue]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ReminderScheduler:
    """Finds the reminders due at an instant and appends each once (the work of one tick)."""

    def __init__(
        self,
        store: EventStore,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        batch_size: int = 200,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.clock = clock
        self.batch_size = max(1, batch_size)

    async def campaigns_at(self, session: AsyncSession, instant: datetime) -> list[str]:
        """Return the campaigns whose reminders a tick at `instant` considers.

        The current regular window (open, or awaiting late certifications: overdue reminders go
        on until the next window opens) and every ad-hoc campaign not closed before `instant`
        (`units_needing_reminder` itself answers nothing before one opens or once it closed).
        """
        adhoc = await views.adhoc_campaigns(session)
        return [current_window(instant).campaign_id] + [
            campaign.campaign_id
            for campaign in adhoc
            if campaign.closes_at is None or campaign.closes_at > instant
        ]

    async def due(self, at: datetime) -> tuple[list[str], list[ReminderDue]]:
        """Return the campaigns considered and every reminder due on the Athens day of `at`."""
        on = athens_date(at)
        async with self.sessions() as session:
            campaigns = await self.campaigns_at(session, at)
            reminders = [
                reminder_event(target, due_on=on)
                for campaign_id in campaigns
                for target in await views.units_needing_reminder(session, campaign_id, on)
            ]
        return campaigns, reminders

    async def tick(self, at: datetime | None = None) -> TickReport:
        """Emit every reminder due at `at` (default: the clock's now) that was not emitted yet."""
        instant = at if at is not None else self.clock.now()
        campaigns, reminders = await self.due(instant)
        emitted = await self.emit(reminders)
        report = TickReport(
            due_on=athens_date(instant),
            campaigns=tuple(campaigns),
            due=len(reminders),
            emitted=len(emitted),
            already_sent=len(reminders) - len(emitted),
            emitted_streams=tuple(emitted),
        )
        log.info(
            "reminder_tick",
            due_on=report.due_on,
            campaigns=report.campaigns,
            due=report.due,
            emitted=report.emitted,
            already_sent=report.already_sent,
        )
        return report

    async def emit(self, reminders: Sequence[ReminderDue]) -> list[str]:
        """Append each reminder as the first event of its stream; return the streams written.

        Streams that already hold their reminder are skipped before writing (a cheap read that
        keeps daily overdue ticks from costing a failed append per unit); the append's
        `expected_version=0` is what guarantees once-only, also against a concurrent writer.
        """
        pending = await self._not_yet_sent(reminders)
        written: list[str] = []
        for chunk in _chunks(pending, self.batch_size):
            try:
                async with self.store.transaction() as tx:
                    for event in chunk:
                        tx.append(
                            stream_of(event), [event], expected_version=0, context=_ctx(event)
                        )
                written.extend(stream_of(event) for event in chunk)
            except VersionConflictError:
                # Someone else wrote one of these meanwhile: the batch rolled back whole; redo it
                # one by one so that the others still go out, each exactly once.
                written.extend(await self._emit_one_by_one(chunk))
        return written

    async def _emit_one_by_one(self, chunk: Sequence[ReminderDue]) -> list[str]:
        written: list[str] = []
        for event in chunk:
            try:
                await self.store.append(
                    stream_of(event), [event], expected_version=0, context=_ctx(event)
                )
            except VersionConflictError:
                continue
            written.append(stream_of(event))
        return written

    async def _not_yet_sent(self, reminders: Sequence[ReminderDue]) -> list[ReminderDue]:
        if not reminders:
            return []
        streams = [stream_of(event) for event in reminders]
        async with self.store.pool.connection() as connection:
            cursor = await connection.execute(
                "SELECT DISTINCT stream_id FROM events WHERE stream_id = ANY(%s)", (streams,)
            )
            sent = {row[0] for row in await cursor.fetchall()}
        return [event for event in reminders if stream_of(event) not in sent]


def _ctx(event: ReminderDue) -> AppendContext:
    return AppendContext(
        actor=ACTOR,
        correlation_id=tick_correlation_id(event.campaign_id, event.due_on),
        unit_id=event.unit_id,
    )


# --- the process ---------------------------------------------------------------------------------


class SchedulerResources:
    """The store and read-model engine of one scheduler process, opened in faust's event loop."""

    def __init__(self, settings: SchedulerSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = asyncio.Lock()
        self._store: EventStore | None = None
        self._engine: AsyncEngine | None = None
        self._scheduler: ReminderScheduler | None = None

    async def scheduler(self) -> ReminderScheduler:
        """Return the scheduler, opening its connections on first use."""
        async with self._lock:
            if self._scheduler is None:
                self._store = await EventStore.from_settings(
                    self.settings, source=SOURCE, clock=self.clock, max_size=4, wait=True
                )
                self._engine = create_engine(self.settings.database_url, pool_size=2)
                self._scheduler = ReminderScheduler(
                    self._store,
                    session_factory(self._engine),
                    clock=self.clock,
                    batch_size=self.settings.reminder_batch_size,
                )
            return self._scheduler

    async def close(self) -> None:
        """Close whatever was opened."""
        async with self._lock:
            if self._store is not None:
                await self._store.close()
            if self._engine is not None:
                await self._engine.dispose()
            self._store, self._engine, self._scheduler = None, None, None


def _brokers(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


def create_faust_app(
    settings: SchedulerSettings,
    tick: Callable[[], Awaitable[object]],
    *,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> faust.App:
    """Return the faust app that calls `tick` on its Athens crontab (and once when ready).

    Only the group's leader ticks (`on_leader=True`): with several scheduler processes one does
    the work and the others stand by; once-only emission does not depend on it.
    """
    app = faust.App(
        settings.scheduler_app_id,
        broker=_brokers(settings.kafka_bootstrap_servers),
        timezone=EUROPE_ATHENS,
        web_enabled=False,
        autodiscover=False,
        datadir=settings.scheduler_data_dir,
        broker_session_timeout=settings.scheduler_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.scheduler_session_timeout_s / 3),
    )

    async def guarded_tick(reason: str) -> None:
        try:
            await tick()
        except Exception:
            # A timer must outlive a bad tick (database restarting, ...): the next one retries,
            # and once-only emission makes the retry safe.
            log.exception("reminder_tick_failed", reason=reason)

    @app.crontab(settings.reminder_cron, timezone=EUROPE_ATHENS, on_leader=True)
    async def remind() -> None:
        await guarded_tick("crontab")

    if settings.scheduler_tick_on_start:

        @app.task(on_leader=True)  # type: ignore[untyped-decorator]  # faust ships no types
        async def catch_up() -> None:
            await guarded_tick("start")

    if on_shutdown is not None:
        close = on_shutdown

        @app.on_before_shutdown.connect
        async def release(_sender: Any, /, *_args: Any, signal: Any, **_kwargs: Any) -> None:
            await close()

    return app


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +02:00")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compliance-scheduler", description="Compliance reminders (faust crontab)."
    )
    parser.add_argument(
        "--now",
        type=_instant,
        default=None,
        help="shift this process's clock to start at this instant (rehearsals, tests)",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the faust worker: a tick when ready, then the crontab")
    once = sub.add_parser("tick", help="run one tick and exit")
    once.add_argument("--at", type=_instant, default=None, help="the tick's instant (default now)")
    return parser


def main(argv: Sequence[str] | None = None, *, settings: SchedulerSettings | None = None) -> int:
    """Run the scheduler process (``python -m compliance.scheduler``)."""
    args = _parser().parse_args(argv)
    resolved = settings if settings is not None else SchedulerSettings()
    configure_logging("compliance")
    clock: Clock = ShiftedClock(args.now) if args.now is not None else clock_from_env()
    configure_telemetry("compliance-scheduler")
    resources = SchedulerResources(resolved, clock)

    if args.command == "tick":

        async def once() -> None:
            try:
                await (await resources.scheduler()).tick(args.at)
            finally:
                await resources.close()

        asyncio.run(once())
        return 0

    one_at_a_time = asyncio.Lock()

    async def tick() -> TickReport:
        # The catch-up tick and a crontab tick may meet; run them one after the other (the
        # second then finds everything sent) rather than racing on the same streams.
        async with one_at_a_time:
            return await (await resources.scheduler()).tick()

    Path(resolved.scheduler_data_dir).mkdir(parents=True, exist_ok=True)
    app = create_faust_app(resolved, tick, on_shutdown=resources.close)
    log.info(
        "scheduler_starting",
        app_id=resolved.scheduler_app_id,
        cron=resolved.reminder_cron,
        now=clock.now(),
        next_fire=next_fire(resolved.reminder_cron, SystemClock().now()),
        pid=os.getpid(),
    )
    worker = faust.Worker(app, loglevel="info", override_logging=False, redirect_stdouts=False)
    worker.execute_from_commandline()  # NoReturn: it ends the process with SystemExit


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "ReminderScheduler",
    "SchedulerResources",
    "SchedulerSettings",
    "ShiftedClock",
    "TickReport",
    "create_faust_app",
    "main",
    "next_fire",
    "reminder_event",
    "stream_of",
    "tick_correlation_id",
]
