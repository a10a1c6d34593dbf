"""Outages: with the receiver failing, slow, dropping connections and down during a stream of
changes, once it recovers every body's view at the receiver equals registry-sync's own view, no
key was applied twice, and no body ever went backwards.

A stream of item registrations and status changes over 20 bodies is emitted in batches while the
reference receiver (a real process) cycles through its fault modes: 5xx, slow beyond the client's
timeout, connections dropped before and after applying, probabilistic mixes, and down (its data
port closed). "Never backwards" is watched three ways, none of them through registry-sync:
- a watcher reads the receiver's own SQLite file all along: per body the held version never
  decreases, and since the stream only adds items (a status change keeps the item counted), the
  number of items the held table counts never decreases either (older content under a newer version
  would show as a drop);
- the receiver's applied keys, in the order it applied them: per body exactly the versions
  1, 2, …, n, each once, in that order (no version lost, skipped, reordered or applied twice);
- the receiver's log line of every push it answered: the held version it reported per body never
  decreases.
A second test parks a body after `max_attempts` failures and unparks it with the operations API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from sqlalchemy import select

from registry_sync.views import ledger
from shared.events.equipment import ItemStatus, ItemStatusChanged
from tests.conftest import DatabaseFactory
from tests.integration.registry_sync.kit import (
    FAST,
    SyncWorld,
    assert_no_duplicate_application,
    eventually,
    fresh_world,
    item,
    rows_of,
    unit,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

CODES = [f"05530{n:02d}" for n in range(1, 21)]
CATEGORIES = [
    ("laptop", "Lenovo", "ThinkPad E14"),
    ("printer", "Brother", "HL-L2350DW"),
    ("tablet", "Samsung", "Galaxy Tab A8"),
    ("switch_hub", "Cisco", "SG350-28"),
    ("desktop", "Dell", "OptiPlex 3000"),
]
PUSH_LINE = re.compile(r"push body=(\d+) version=(\d+) outcome=(\w+) held=(\d+)")


class Stream:
    """Random additive changes: new items, and status flips of items already registered."""

    def __init__(self, world: SyncWorld, seed: int) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self.status: dict[UUID, ItemStatus] = {}
        self.holder: dict[UUID, str] = {}
        self.registered: dict[str, int] = defaultdict(int)

    async def emit(self, count: int) -> None:
        for _ in range(count):
            if self.status and self.rng.random() < 0.3:
                item_id = self.rng.choice(list(self.status))
                before = self.status[item_id]
                after = (
                    ItemStatus.OUT_OF_ORDER if before is ItemStatus.IN_USE else ItemStatus.IN_USE
                )
                self.status[item_id] = after
                await self.world.emit(self.world.equipment, str(item_id), [
                    ItemStatusChanged(item_id=item_id, unit_id=self.holder[item_id],
                                      from_status=before, to_status=after, reason="έλεγχος",
                                      performed_on=date(2026, 11, 20)),
                ])  # fmt: skip
                continue
            code = self.rng.choice(CODES)
            category, manufacturer, model = self.rng.choice(CATEGORIES)
            registered = item(
                code, category, manufacturer, model, year=self.rng.randint(2015, 2026)
            )
            self.status[registered.item_id] = ItemStatus.IN_USE
            self.holder[registered.item_id] = code
            self.registered[code] += 1
            await self.world.emit(self.world.equipment, str(registered.item_id), [registered])


class Watcher:
    """Reads the receiver's SQLite file directly (no fault applies) and records every change."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.seen: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (version, items)
        self.reads = 0

    def read_once(self) -> None:
        if not self.db_path.exists():
            return
        connection = sqlite3.connect(self.db_path, timeout=5.0)
        try:
            held = connection.execute("SELECT body_code, registry_version, rows FROM bodies")
            for code, version, rows in held.fetchall():
                counted = sum(row["quantity"] for row in json.loads(rows))
                history = self.seen[code]
                if not history or history[-1] != (version, counted):
                    history.append((version, counted))
        except sqlite3.OperationalError:  # the tables are not there yet
            return
        finally:
            connection.close()
        self.reads += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.read_once)
            await asyncio.sleep(0.03)
        await asyncio.to_thread(self.read_once)

    def assert_never_backwards(self) -> None:
        assert self.reads > 10, self.reads
        for code, history in self.seen.items():
            for (v1, n1), (v2, n2) in itertools.pairwise(history):
                assert v2 > v1, f"{code}: held version went from {v1} to {v2}: {history}"
                assert n2 >= n1, f"{code}: v{v2} counts {n2} items, fewer than v{v1} ({n1})"


async def pushes_received(receiver: Receiver) -> int:
    stats = await asyncio.to_thread(receiver.stats)
    return int(stats["pushes_received"])


async def test_after_outages_the_receiver_holds_our_view_applied_once_never_backwards(
    world: SyncWorld, receiver: Receiver
) -> None:
    for code in CODES:
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
    stream = Stream(world, seed=20261130)
    watcher = Watcher(receiver.db_path)
    stop = asyncio.Event()
    watching = asyncio.create_task(watcher.run(stop))
    await stream.emit(40)
    await world.settle()  # a first version of every body is held before the faults start
    phases: list[tuple[str, dict[str, Any]]] = [
        ("fail", {"status": 503}),
        ("slow", {"delay_ms": 2600, "probability": 0.5}),  # beyond the client's 2 s timeout
        ("drop_before", {"probability": 0.6}),
        ("drop_after", {"probability": 0.6}),  # applied, then the answer is lost
        ("fail", {"status": 500, "probability": 0.4}),
        ("drop_after", {}),
        ("slow", {"delay_ms": 300}),
    ]
    try:
        for mode, options in phases:
            await asyncio.to_thread(receiver.set_faults, mode, **options)
            before = await pushes_received(receiver)
            await stream.emit(30)

            async def pushed(before: int = before) -> bool:
                return await pushes_received(receiver) >= before + 8

            try:
                await eventually(pushed, timeout_s=40, what=f"pushes under {mode}")
            except AssertionError as exc:
                breaker = world.deliverer.breaker
                raise AssertionError(
                    f"{exc}; breaker {breaker.state}, probing {breaker.is_probe()}"
                ) from exc
        # Down: the data port refuses connections; the breaker must open and hold back.
        opened = world.deliverer.breaker.opened_count
        await asyncio.to_thread(receiver.set_faults, "down")
        await stream.emit(40)

        async def breaker_opened() -> bool:
            return world.deliverer.breaker.opened_count > opened

        await eventually(breaker_opened, timeout_s=40, what="the breaker to open while down")
        await asyncio.to_thread(receiver.set_faults, "fail", status=502, probability=0.3)
        await stream.emit(40)
        await asyncio.to_thread(receiver.set_faults, "ok")
        await world.settle(timeout_s=120)
    finally:
        stop.set()
        await watching

    await world.assert_receiver_holds_our_view(receiver, CODES)
    assert world.deliverer.breaker.opened_count > 0
    # Nothing lost: every registered item is counted at the receiver (all are reportable).
    for code in CODES:
        held = receiver.body(code)
        assert held is not None
        assert sum(row[-1] for row in rows_of(held)) == stream.registered[code], code
    # The faults did strike, and deliveries failed and were retried (none parked: see above).
    log_text = receiver.log_path.read_text("utf-8", "replace")
    for mode in ("fail", "slow", "drop_before", "drop_after"):
        assert f"fault {mode} on PUT" in log_text, mode
    ledger_rows = await world.ledger_rows()
    assert sum(row.failures_total for row in ledger_rows.values()) > 0
    # Never backwards: the held tables as watched, the order of application, the answers given.
    watcher.assert_never_backwards()
    applied = receiver.applied_versions_in_order()
    for code in CODES:
        assert applied[code] == list(range(1, ledger_rows[code].acked_version + 1)), code
    held_answered: dict[str, int] = {}
    for code, _version, _outcome, held_version in PUSH_LINE.findall(log_text):
        assert int(held_version) >= held_answered.get(code, 0), (code, held_version)
        held_answered[code] = int(held_version)
    assert_no_duplicate_application(receiver)


@pytest_asyncio.fixture(loop_scope="session")
async def impatient(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[SyncWorld]:
    # Park after 3 failed attempts; a breaker that never opens, so every failure counts.
    policy = replace(FAST, max_attempts=3, breaker_threshold=1000)
    async with fresh_world(
        f"park{uuid4().hex[:6]}", fresh_database=fresh_database, kafka_bootstrap=kafka_bootstrap,
        run_id=run_id, created_topics=_created_topics, tmp_path=tmp_path,
        receiver_url=receiver.url, policy=policy,
    ) as built:  # fmt: skip
        yield built


async def test_a_body_is_parked_after_max_attempts_and_resend_delivers_it(
    impatient: SyncWorld, receiver: Receiver
) -> None:
    world = impatient
    code = "0553101"
    await asyncio.to_thread(receiver.set_faults, "fail", status=503)
    await world.emit(world.units, f"unit:{code}", [unit(code, "1ο ΛΥΚΕΙΟ")])
    laptop = item(code, "laptop", "Dell", "Latitude 3540", year=2024)
    await world.emit(world.equipment, str(laptop.item_id), [laptop])
    await world.settle(ignore_parked=True)

    async def parked() -> bool:
        answer = await world.client.get(f"/registry/deliveries/{code}", headers=world.token())
        return bool(answer.json()["state"] == "parked")

    await eventually(parked, timeout_s=30, what="the delivery to be parked")
    status = (await world.client.get(f"/registry/deliveries/{code}", headers=world.token())).json()
    assert status["attempts"] == 3, status
    assert "3 failed attempts" in status["parked_reason"], status
    assert "503" in status["parked_reason"], status
    assert status["acknowledged_version"] is None
    # The receiver is back: another body is delivered, but a parked one waits for an operator.
    await asyncio.to_thread(receiver.set_faults, "ok")
    other = "0553102"
    await world.emit(world.units, f"unit:{other}", [unit(other, "2ο ΛΥΚΕΙΟ")])
    await world.settle(ignore_parked=True)
    assert receiver.body(other) is not None
    assert receiver.body(code) is None
    assert (await world.ledger_row(code)).parked_at is not None
    answer = await world.client.post(f"/registry/deliveries/{code}/resend", headers=world.token())
    assert answer.status_code == 202, answer.text
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, [code])
    status = (await world.client.get(f"/registry/deliveries/{code}", headers=world.token())).json()
    assert status["state"] == "idle", status
    assert status["parked_reason"] is None


@pytest_asyncio.fixture(loop_scope="session")
async def by_hand(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path: Path,
    receiver: Receiver,
) -> AsyncIterator[SyncWorld]:
    # No delivery loop: the test calls run_once itself.
    async with fresh_world(
        f"hand{uuid4().hex[:6]}", fresh_database=fresh_database, kafka_bootstrap=kafka_bootstrap,
        run_id=run_id, created_topics=_created_topics, tmp_path=tmp_path,
        receiver_url=receiver.url, deliver=False,
    ) as built:  # fmt: skip
        yield built


async def test_a_half_open_probe_that_finds_its_body_locked_does_not_stall_the_breaker(
    by_hand: SyncWorld, receiver: Receiver
) -> None:
    """The probe may pick a body whose ledger row the projector holds locked (freeze skips it):
    that attempt has no verdict, and must not keep the breaker waiting for one forever."""
    world = by_hand
    code = "0553201"
    await world.emit(world.units, f"unit:{code}", [unit(code, "ΕΠΑΛ")])
    await world.settle_projection()
    breaker = world.deliverer.breaker
    for _ in range(world.deliverer.policy.breaker_threshold):
        breaker.record_failure()  # the receiver was down a moment ago

    async def half_open() -> bool:
        return breaker.allow_any()

    await eventually(half_open, timeout_s=10, what="the breaker to turn half-open")
    async with world.engine.connect() as locker, locker.begin():
        await locker.execute(  # what the projector's bump of this body does until it commits
            select(ledger.c.body_code).where(ledger.c.body_code == code).with_for_update()
        )
        async with world.deliverer.client() as client:
            assert await world.deliverer.run_once(client) == 1  # the probe, on the locked row
    assert breaker.allow_any(), "the probe found nothing to send and was never released"
    async with world.deliverer.client() as client:
        assert await world.deliverer.run_once(client) == 1
    assert breaker.state == "closed"
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, [code])
