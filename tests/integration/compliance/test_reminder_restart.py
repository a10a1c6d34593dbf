"""Acceptance (issue 6): kill the scheduler around a reminder's time, restart it, and each reminder
appears exactly once, in the store and on the topic.

The scheduler runs as the real process (`python -m compliance.scheduler`): faust-streaming's worker
with its crontab firing every 2 seconds (croniter's seconds field) and its clock shifted to
17 December 2026, 08:00 Athens, 14 days before the December deadline. It appends one reminder per
transaction, so a SIGKILL lands in the middle of a tick. It is killed twice, the second time
mid-way through its catch-up tick, and then runs to completion and a few more (idle) ticks. The
reminders are then relayed by the kernel's outbox relay to a fresh topic and read back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.compliance.reminder_kit import ComplianceDb, by_stream, certified, small_tree

ROOT = Path(__file__).resolve().parents[3]
SCHOOLS = tuple(f"0170{n:03d}" for n in range(240))
CERTIFIED = SCHOOLS[:40]
EXPECTED = len(SCHOOLS) - len(CERTIFIED)
SHIFTED_NOW = "2026-12-17T07:59:58+02:00"


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str, poll_s: float = 0.05
) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)


class Scheduler:
    """One run of the scheduler process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *, tick_on_start: bool) -> None:
        self.log = log
        self._output = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "compliance.scheduler", "--now", SHIFTED_NOW, "run"],
            env={**env, "COMPLIANCE_SCHEDULER_TICK_ON_START": str(tick_on_start).lower()},
            cwd=ROOT,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        for raw in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    found.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return found

    def ticks(self) -> list[dict[str, object]]:
        return [line for line in self.lines() if line.get("event") == "reminder_tick"]

    def alive(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            pytest.fail(f"the scheduler exited with {self.process.returncode}:\n{tail}")
        return True

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._output.close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self._output.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db(fresh_database: DatabaseFactory) -> AsyncIterator[ComplianceDb]:
    database = await ComplianceDb.create(fresh_database("reminder_restart"))
    signed = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    await database.fold(*small_tree(SCHOOLS), *(certified(code, at=signed) for code in CERTIFIED))
    try:
        yield database
    finally:
        await database.close()


@pytest.mark.timeout(240)
async def test_killed_and_restarted_scheduler_emits_each_reminder_exactly_once(
    db: ComplianceDb,
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
    run_id: str,
    tmp_path: Path,
) -> None:
    app_id = f"compliance-scheduler-test-{run_id}"
    env = {
        **os.environ,
        "COMPLIANCE_DATABASE_URL": db.url,
        "COMPLIANCE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COMPLIANCE_SCHEDULER_APP_ID": app_id,
        "COMPLIANCE_SCHEDULER_DATA_DIR": str(tmp_path / "faust"),
        "COMPLIANCE_REMINDER_CRON": "* * * * * */2",
        "COMPLIANCE_REMINDER_BATCH_SIZE": "1",
        "OTEL_SDK_DISABLED": "true",
        # The broker's minimum: a killed run's membership blocks the restart's join this long.
        "COMPLIANCE_SCHEDULER_SESSION_TIMEOUT_S": "6",
    }

    async def stored() -> int:
        return len(await db.reminders())

    async def has_at_least(count: int) -> bool:
        return await stored() >= count

    try:
        # 1. The crontab fires (no catch-up tick): kill as soon as its first reminder is stored.
        first = Scheduler(env, tmp_path / "run1.log", tick_on_start=False)
        await eventually(
            lambda: _alive_and(first, has_at_least(1)),
            timeout_s=90,
            what="the first crontab tick",
            poll_s=0.005,
        )
        first.kill()
        after_first = await stored()

        # 2. Restarted: its catch-up tick goes on where the first stopped; kill it mid-way.
        second = Scheduler(env, tmp_path / "run2.log", tick_on_start=True)
        # Kill at its first new reminder, polling fast: on a quiet machine the rest of the tick
        # takes well under a second, and a later kill could find it already finished.
        await eventually(
            lambda: _alive_and(second, has_at_least(after_first + 1)),
            timeout_s=90,
            what="the restarted scheduler's catch-up tick",
            poll_s=0.005,
        )
        second.kill()
        after_second = await stored()

        # 3. Restarted again: it completes, then ticks idle on the crontab, then stops cleanly.
        third = Scheduler(env, tmp_path / "run3.log", tick_on_start=True)
        await eventually(
            lambda: _alive_and(third, has_at_least(EXPECTED)), timeout_s=90, what="completion"
        )

        async def idle_ticks() -> bool:
            third.alive()
            return sum(1 for t in third.ticks() if t["emitted"] == 0) >= 2

        await eventually(idle_ticks, timeout_s=30, what="two idle crontab ticks")
        assert third.stop() == 0
    finally:
        for run in ("first", "second", "third"):
            process = locals().get(run)
            if isinstance(process, Scheduler) and process.process.poll() is None:
                process.kill()
        await _delete_faust_topics(kafka_bootstrap, app_id)

    # Killed mid-tick, twice: neither run had finished.
    assert 0 < after_first < after_second < EXPECTED, (after_first, after_second)

    found = await db.reminders()
    counts = by_stream(found)
    assert len(found) == EXPECTED
    assert set(counts.values()) == {1}
    assert {event.unit_id for _, event in found} == set(SCHOOLS) - set(CERTIFIED)
    assert {recorded.version for recorded, _ in found} == {1}
    runs = third.ticks()
    assert sum(int(str(t["emitted"])) for t in runs) == EXPECTED - after_second
    assert runs[0]["due_on"] == "2026-12-17"

    # On the topic: the relay publishes what the store committed, each reminder once.
    topic = await unique_topic("compliance-reminders", partitions=6)
    relay = OutboxRelay(
        db.url, topic=topic, bootstrap_servers=kafka_bootstrap, source="/ictcadastre/compliance"
    )
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    try:
        keys = await _read_keys(kafka_bootstrap, topic, EXPECTED)
    finally:
        stop.set()
        await relaying
    assert len(keys) == EXPECTED
    assert Counter(keys) == counts


async def _alive_and(scheduler: Scheduler, check: Awaitable[bool]) -> bool:
    scheduler.alive()
    return await check


async def _read_keys(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    keys: list[str] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # Read until the expected count, then a little longer: a duplicate would show up here.
        quiet_until: float | None = None
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                keys.extend(record.key.decode() for record in records)
            if len(keys) >= expected:
                quiet_until = quiet_until or loop.time() + 2
                if loop.time() >= quiet_until:
                    break
    finally:
        await consumer.stop()
    return keys


async def _delete_faust_topics(bootstrap: str, app_id: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [name for name in await admin.list_topics() if name.startswith(f"{app_id}-")]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
