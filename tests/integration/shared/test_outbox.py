"""The outbox relay against real PostgreSQL and Kafka: order per stream, one leader, takeover."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable

import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.events.envelope import RecordedEvent
from shared.eventstore import EventStore
from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.shared.kit import Counted, prepare


async def eventually(check: object, timeout_s: float = 30.0) -> None:
    """Poll `check()` (async, returning bool) until true or fail after `timeout_s`."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.1)


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0
) -> list[RecordedEvent]:
    """Read `topic` from the beginning until `expected` records arrived (or time runs out)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    got: list[RecordedEvent] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                got.extend(RecordedEvent.from_kafka(r.key, r.value, r.headers) for r in records)
        # A short extra read: duplicates would show up here.
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            got.extend(RecordedEvent.from_kafka(r.key, r.value, r.headers) for r in records)
    finally:
        await consumer.stop()
    return got


@pytest_asyncio.fixture(loop_scope="session")
async def setup(
    fresh_database: DatabaseFactory,
) -> AsyncIterator[tuple[str, AsyncEngine, EventStore]]:
    url = fresh_database("outbox")
    engine = await prepare(url, with_views=False)
    store = await EventStore.open(url, source="/tests", clock=SystemClock())
    yield url, engine, store
    await store.close()
    await engine.dispose()


async def outbox_size(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM outbox"))).scalar_one())


async def test_relay_publishes_every_event_once_in_per_stream_order(
    setup: tuple[str, AsyncEngine, EventStore], kafka_bootstrap: str, unique_topic: TopicFactory
) -> None:
    url, engine, store = setup
    topic = await unique_topic("outbox-order", partitions=6)
    for round_ in range(20):
        for stream in range(25):
            await store.append(
                f"stream-{stream}", [Counted(amount=round_)], expected_version=round_
            )
    relay = OutboxRelay(url, topic=topic, bootstrap_servers=kafka_bootstrap, batch_size=64)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _is_zero(outbox_size(engine)))
    finally:
        stop.set()
        await task
    received = await read_topic(kafka_bootstrap, topic, 500)
    assert len(received) == 500
    by_stream: dict[str, list[int]] = defaultdict(list)
    for event in received:
        by_stream[event.stream_id].append(event.version)
    assert all(versions == list(range(1, 21)) for versions in by_stream.values())
    assert len(by_stream) == 25


async def _is_zero(value: Awaitable[int]) -> bool:
    return await value == 0


def _spawn_relay(url: str, topic: str, bootstrap: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.shared.procs", "relay", url, topic, bootstrap],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


async def test_two_relays_only_one_publishes_and_the_other_takes_over_after_kill(
    setup: tuple[str, AsyncEngine, EventStore], kafka_bootstrap: str, unique_topic: TopicFactory
) -> None:
    url, engine, store = setup
    topic = await unique_topic("outbox-leader", partitions=3)
    in_process = OutboxRelay(
        url, topic=topic, bootstrap_servers=kafka_bootstrap, standby_poll_s=0.1
    )
    stop = asyncio.Event()
    process = _spawn_relay(url, topic, kafka_bootstrap)
    try:
        # Let the subprocess become leader first, then start a second relay beside it.
        await store.append("leader-probe", [Counted(amount=0)], expected_version=0)
        await eventually(lambda: _is_zero(outbox_size(engine)))
        task = asyncio.create_task(in_process.run(stop))
        for n in range(1, 101):
            await store.append("leader-probe", [Counted(amount=n)], expected_version=n)
        await eventually(lambda: _is_zero(outbox_size(engine)))
        assert (in_process.published, in_process.is_leader) == (0, False)

        # Kill -9 the leader while events keep coming: the standby takes over with no gap.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        for n in range(101, 201):
            await store.append("leader-probe", [Counted(amount=n)], expected_version=n)
        await eventually(lambda: _is_zero(outbox_size(engine)))
        leader, published = in_process.is_leader, in_process.published
        assert leader
        assert published >= 100
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        stop.set()
    await task
    received = await read_topic(kafka_bootstrap, topic, 201)
    versions = sorted({e.version for e in received})
    assert versions == list(range(1, 202))  # every event arrived; duplicates only by re-send


async def test_a_relay_whose_topic_is_missing_keeps_the_outbox_and_stops_when_told(
    setup: tuple[str, AsyncEngine, EventStore], kafka_bootstrap: str, run_id: str
) -> None:
    url, engine, store = setup
    await store.append("no-topic", [Counted(amount=1)], expected_version=0)
    before = await outbox_size(engine)
    relay = OutboxRelay(url, topic=f"missing.{run_id}", bootstrap_servers=kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(task, timeout=15)
    assert relay.published == 0
    assert await outbox_size(engine) == before
