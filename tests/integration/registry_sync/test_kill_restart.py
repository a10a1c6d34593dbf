"""kill -9 of registry-sync during deliveries, then restart: nothing lost, nothing applied twice.

The registry-sync worker runs as a real process (`registry-sync-worker`: migrations, projections,
delivery, housekeeping) against its own database and the run's topics; the sources (stores and
their outbox relays) and the operations API run in the test process. The receiver answers slowly
(200 ms a push) so versions are in flight, frozen in the ledger but not yet acknowledged, when the
worker is SIGKILLed, twice:
1. the worker is frozen (SIGSTOP) while its pushes sleep at the receiver, which then applies them
   and answers into a socket nobody reads; SIGKILL: the receiver holds versions whose
   acknowledgement registry-sync never recorded (checked), so after the restart it must resend
   them under the same keys (answered `duplicate_key`, checked in the delivery log);
2. SIGKILL while pushes are in flight: the receiver never applies them (the client is gone).
It is started again each time, the stream goes on meanwhile, and once everything settled:
- every body's table at the receiver is exactly our own current table, under the acknowledged
  version, and every registered item is counted (nothing lost);
- every key was applied once, and per body the receiver applied exactly the versions 1..n in order
  (a version frozen before a kill is resent after it under the same key, never skipped or doubled);
- the ledger has nothing pending, in flight or parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from registry_sync.views import delivery_log, ledger
from tests.conftest import DatabaseFactory
from tests.integration.registry_sync.kit import (
    SyncWorld,
    assert_no_duplicate_application,
    eventually,
    fresh_world,
    item,
    rows_of,
    unit,
)
from tests.receiver import Receiver, free_port

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[3]
WORKER = ROOT / ".venv" / "bin" / "registry-sync-worker"
CODES = [f"05570{n:02d}" for n in range(1, 13)]
KILLS = 2
CATEGORIES = [
    ("laptop", "Lenovo", "ThinkPad E14"),
    ("printer", "HP", "LaserJet M209dw"),
    ("switch_hub", "Cisco", "CBS110-8T"),
]


class WorkerProcess:
    """The registry-sync worker as a child process in its own session (killed as a group)."""

    def __init__(self, world: SyncWorld, receiver: Receiver, log_path: Path) -> None:
        settings = world.settings
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("REGISTRY_SYNC_") and k != "ICTC_CLOCK_FILE"
        }
        self.env = inherited | {
            "REGISTRY_SYNC_DATABASE_URL": settings.database_url,
            "REGISTRY_SYNC_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "REGISTRY_SYNC_UNITS_TOPIC": settings.units_topic,
            "REGISTRY_SYNC_EQUIPMENT_TOPIC": settings.equipment_topic,
            "REGISTRY_SYNC_COMPLIANCE_TOPIC": settings.compliance_topic,
            "REGISTRY_SYNC_RECEIVER_URL": receiver.url,
            "REGISTRY_SYNC_AUTH_ISSUER": settings.auth_issuer,
            "REGISTRY_SYNC_AUTH_AUDIENCE": settings.auth_audience,
            "REGISTRY_SYNC_AUTH_JWKS_FILE": str(settings.auth_jwks_file),
            "REGISTRY_SYNC_PORT": str(free_port()),
            "REGISTRY_SYNC_DELIVERY_TIMEOUT_S": "5",
            "REGISTRY_SYNC_DELIVERY_MAX_ATTEMPTS": "1000",
            "REGISTRY_SYNC_DELIVERY_BACKOFF_INITIAL_S": "0.05",
            "REGISTRY_SYNC_DELIVERY_BACKOFF_MAX_S": "0.5",
            "REGISTRY_SYNC_BREAKER_COOLDOWN_S": "0.2",
            "REGISTRY_SYNC_RECONCILE_INTERVAL_S": "0",
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(WORKER)],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker (and anything it started) and reap it."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def pause(self) -> None:
        """SIGSTOP the worker: it keeps its connections open but reads no answer."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time (teardown)."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[SyncWorld]:
    # Sources, relays and the API here; the projections and the delivery are the worker's.
    async with fresh_world(
        f"kill{uuid4().hex[:6]}", fresh_database=fresh_database, kafka_bootstrap=kafka_bootstrap,
        run_id=run_id, created_topics=_created_topics, tmp_path=tmp_path,
        receiver_url=receiver.url, deliver=False, project=False,
    ) as built:  # fmt: skip
        yield built


async def in_flight(world: SyncWorld) -> int:
    async with world.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(ledger.c.inflight_version.is_not(None))
        )
    return int(count or 0)


async def unacknowledged_at_receiver(world: SyncWorld, receiver: Receiver) -> list[str]:
    """Return the bodies whose version held at the receiver is newer than the acknowledged one."""
    rows = await world.ledger_rows()
    connection = sqlite3.connect(receiver.db_path, timeout=10.0)
    try:
        held = dict(connection.execute("SELECT body_code, registry_version FROM bodies"))
    finally:
        connection.close()
    return [
        code
        for code, version in held.items()
        if code in rows and version > (rows[code].acked_version or 0)
    ]


async def test_kill_9_during_deliveries_loses_nothing_and_applies_nothing_twice(
    world: SyncWorld, receiver: Receiver, tmp_path: Path
) -> None:
    await asyncio.to_thread(receiver.set_faults, "slow", delay_ms=200)
    worker = WorkerProcess(world, receiver, tmp_path / "registry-sync-worker.log")
    registered: dict[str, int] = defaultdict(int)
    serial = 0

    async def emit_items(count: int) -> None:
        nonlocal serial
        for _ in range(count):
            code = CODES[serial % len(CODES)]
            category, manufacturer, model = CATEGORIES[serial % len(CATEGORIES)]
            serial += 1
            registered[code] += 1
            made = item(code, category, manufacturer, model, year=2015 + serial % 10)
            await world.emit(world.equipment, str(made.item_id), [made])

    worker.start()
    try:
        for code in CODES:
            await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
        for round_ in range(KILLS):
            await emit_items(40)
            received = receiver.stats()["pushes_received"]

            async def mid_delivery(received: int = received) -> bool:
                assert worker.alive(), f"the worker died:\n{worker.log_tail()}"
                pushed = (await asyncio.to_thread(receiver.stats))["pushes_received"]
                return pushed > received and await in_flight(world) > 0

            await eventually(mid_delivery, timeout_s=60, what=f"deliveries in flight ({round_})")
            if round_ == 0:
                # Freeze the worker while its pushes sleep at the receiver, until the receiver
                # applied some of them: their acknowledgements die with the worker.
                await asyncio.to_thread(worker.pause)

                async def applied_unacknowledged() -> bool:
                    return bool(await unacknowledged_at_receiver(world, receiver))

                await eventually(applied_unacknowledged, timeout_s=30, what="lost acks")
            await asyncio.to_thread(worker.kill)  # kill -9, deliveries in flight
            await emit_items(10)  # the stream goes on while registry-sync is dead
            worker.start()
        await emit_items(30)
        await world.settle(timeout_s=120)
    finally:
        await asyncio.to_thread(worker.stop)

    assert worker.starts == KILLS + 1
    await world.assert_receiver_holds_our_view(receiver, CODES)
    for code in CODES:
        held = receiver.body(code)
        assert held is not None
        assert sum(row[-1] for row in rows_of(held)) == registered[code], code
    assert_no_duplicate_application(receiver)
    ledger_rows = await world.ledger_rows()
    applied = receiver.applied_versions_in_order()
    for code in CODES:
        row = ledger_rows[code]
        assert applied[code] == list(range(1, row.acked_version + 1)), code
        assert (row.inflight_version, row.parked_at, row.wanted_seq) == (
            None, None, row.built_seq,
        ), code  # fmt: skip
    async with world.engine.connect() as conn:
        resent_applied = await conn.scalar(
            select(func.count()).where(delivery_log.c.outcome == "duplicate_key")
        )
    assert resent_applied, "no version applied before the kill was resent after the restart"
    backlog = (await world.client.get("/registry/backlog", headers=world.token())).json()
    assert (backlog["pending"], backlog["in_flight"], backlog["parked"]) == (0, 0, 0), backlog
