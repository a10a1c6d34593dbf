"""The projector runner against real PostgreSQL and Kafka: crash safety, poison events, rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.clock import SystemClock
from shared.consumer import Projection, ProjectorRunner, load_offsets, rebuild, wait_for_position
from shared.events.envelope import RecordedEvent
from shared.eventstore import EventStore
from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.shared.kit import Counted, Poisoned, checksum, prepare, projection


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """Poll `check()` until it is true; fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.1)


async def applied_count(engine: AsyncEngine, name: str) -> int:
    """Return how many records `name` has consumed in all (sum over partitions of offset + 1)."""
    async with engine.connect() as connection:
        offsets = await load_offsets(connection, name)
    return sum(s.offset + 1 for s in offsets.values())


class Source:
    """An event store and its relay feeding one topic."""

    def __init__(self, url: str, store: EventStore, topic: str, bootstrap: str) -> None:
        self.url, self.store, self.topic, self.bootstrap = url, store, topic, bootstrap

    async def publish_all(self) -> None:
        """Relay the whole outbox to the topic and return when it is empty."""
        relay = OutboxRelay(self.url, topic=self.topic, bootstrap_servers=self.bootstrap)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        try:
            await eventually(lambda: _zero(relay.backlog()))
        finally:
            stop.set()
            await task


async def topic_size(bootstrap: str, topic: str) -> int:
    """Return how many records `topic` holds (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(6)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _zero(value: Awaitable[int]) -> bool:
    return await value == 0


@pytest_asyncio.fixture(loop_scope="session")
async def source(
    fresh_database: DatabaseFactory, kafka_bootstrap: str, unique_topic: TopicFactory
) -> AsyncIterator[Source]:
    url = fresh_database("projector_source")
    engine = await prepare(url, with_views=False)
    store = await EventStore.open(url, source="/tests", clock=SystemClock())
    topic = await unique_topic("projector", partitions=6)
    yield Source(url, store, topic, kafka_bootstrap)
    await store.close()
    await engine.dispose()


async def fill(source: Source, streams: int, rounds: int) -> int:
    """Append `rounds` events to each of `streams` streams; return how many."""
    for round_ in range(rounds):
        async with source.store.transaction() as tx:
            for stream in range(streams):
                tx.append(
                    f"s{stream}", [Counted(amount=round_ * 7 + stream)], expected_version=round_
                )
    return streams * rounds


def watching_the_collector(counting: Projection) -> tuple[Projection, list[bool]]:
    """Return `counting` noting at each apply whether the cyclic collector is on; and the notes."""
    notes: list[bool] = []
    batch = counting.apply_batch
    assert batch is not None

    async def watched_apply(event: RecordedEvent, session: AsyncSession) -> None:
        notes.append(gc.isenabled())
        await counting.apply(event, session)

    async def watched_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
        notes.append(gc.isenabled())
        await batch(events, session)

    return dataclasses.replace(counting, apply=watched_apply, apply_batch=watched_batch), notes


def spawn_projector(url: str, topic: str, bootstrap: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.shared.procs",
            "projector",
            url,
            topic,
            bootstrap,
            name,
            "50",
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


async def test_kill_9_mid_batch_then_restart_equals_an_uninterrupted_run(
    source: Source, fresh_database: DatabaseFactory, unique_group: Callable[[str], str]
) -> None:
    total = await fill(source, streams=120, rounds=50)
    await source.publish_all()

    clean_url, crash_url = fresh_database("projector_clean"), fresh_database("projector_crash")
    clean, crashed = await prepare(clean_url), await prepare(crash_url)
    clean_name, crash_name = unique_group("clean"), unique_group("crash")
    stop = asyncio.Event()
    # The uninterrupted run applies event by event; the crashed one takes the batch fast path:
    # equal checksums also show that `apply_batch` has the effect of `apply`.
    runner = ProjectorRunner(
        projection(clean_name, [source.topic], batched=False),
        engine=clean,
        bootstrap_servers=source.bootstrap,
    )
    task = asyncio.create_task(runner.run(stop))
    await eventually(lambda: _equals(applied_count(clean, clean_name), total))
    stop.set()
    await task

    kills = 0
    process = spawn_projector(crash_url, source.topic, source.bootstrap, crash_name)
    try:
        for threshold in (total // 5, total // 2):

            def progressed(t: int = threshold) -> Awaitable[bool]:
                return _at_least(applied_count(crashed, crash_name), t)

            await eventually(progressed)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills += 1
            process = spawn_projector(crash_url, source.topic, source.bootstrap, crash_name)
        await eventually(lambda: _equals(applied_count(crashed, crash_name), total))
    finally:
        process.kill()
        process.wait(timeout=10)
    assert kills == 2
    assert await checksum(crashed) == await checksum(clean)
    rows, _ = await checksum(clean)
    assert rows == 120
    for engine in (clean, crashed):
        await engine.dispose()


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _at_least(value: Awaitable[int], expected: int) -> bool:
    return await value >= expected


async def test_poison_events_go_to_the_dead_letter_topic_and_the_loop_goes_on(
    source: Source, fresh_database: DatabaseFactory, unique_group: Callable[[str], str]
) -> None:
    url = fresh_database("projector_poison")
    engine = await prepare(url)
    name = unique_group("poison")
    await source.store.append("p-1", [Counted(amount=1)], expected_version=0)
    await source.store.append("p-2", [Poisoned(why="apply refuses this")], expected_version=0)
    await source.publish_all()
    producer = AIOKafkaProducer(bootstrap_servers=source.bootstrap)
    await producer.start()
    await producer.send_and_wait(
        source.topic, key=b"junk", value=b"\xff not json", headers=[("ce_type", b"Counted")]
    )
    await producer.send_and_wait(
        source.topic,
        key=b"alien",
        value=b"{}",
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"00000000-0000-0000-0000-000000000001"),
            ("ce_source", b"/x"),
            ("ce_subject", b"alien"),
            ("ce_type", b"NoSuchEvent"),
            ("ce_streamversion", b"1"),
            ("ce_time", b"2026-12-01T00:00:00.000000Z"),
        ],
    )
    await producer.stop()
    await source.store.append("p-1", [Counted(amount=2)], expected_version=1)
    result = await source.store.append("p-3", [Counted(amount=3)], expected_version=0)
    await source.publish_all()

    watched, collector_on = watching_the_collector(projection(name, [source.topic]))
    runner = ProjectorRunner(watched, engine=engine, bootstrap_servers=source.bootstrap)
    assert gc.isenabled()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for_position(
            engine,
            name,
            topic=source.topic,
            stream_id="p-3",
            position=result.last_position,
            partitions=6,
            timeout_s=60,
        )
        await eventually(lambda: _at_least(_dead(runner), 3))
    finally:
        stop.set()
        await task
    async with engine.connect() as connection:
        from tests.integration.shared.kit import test_counts  # noqa: PLC0415

        rows = {
            r.stream_id: (r.events, r.total)
            for r in await connection.execute(
                test_counts.select().where(test_counts.c.stream_id.in_(["p-1", "p-2", "p-3"]))
            )
        }
    assert rows == {"p-1": (2, 3), "p-3": (1, 3)}
    # The collector is paused while a batch applies, on the fast path and on the careful one
    # (a batch here fails and is redone), and always resumed.
    assert collector_on
    assert not any(collector_on)
    assert gc.isenabled()

    consumer = AIOKafkaConsumer(
        f"{name}.dlq", bootstrap_servers=source.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    reasons = sorted(
        dict(r.headers)["dlq-reason"].decode() for recs in batch.values() for r in recs
    )
    assert len(reasons) == 3
    assert any("apply failed" in r and "apply refuses this" in r for r in reasons)
    assert any("undecodable" in r and "NoSuchEvent" in r for r in reasons)
    assert any("undecodable" in r and "not JSON" in r for r in reasons)
    await engine.dispose()


async def _dead(runner: ProjectorRunner) -> int:
    return runner.dead_lettered


async def test_rebuild_yields_the_live_read_model_and_the_live_runner_goes_on(
    source: Source, fresh_database: DatabaseFactory, unique_group: Callable[[str], str]
) -> None:
    url = fresh_database("projector_rebuild")
    engine = await prepare(url)
    name = unique_group("rebuild")
    await fill(source, streams=30, rounds=3)
    await source.publish_all()
    the_projection = projection(name, [source.topic])
    runner = ProjectorRunner(the_projection, engine=engine, bootstrap_servers=source.bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        last = await source.store.append("rb-probe", [Counted(amount=1)], expected_version=0)
        await source.publish_all()
        await wait_for_position(
            engine,
            name,
            topic=source.topic,
            stream_id="rb-probe",
            position=last.last_position,
            partitions=6,
            timeout_s=60,
        )
        size = await topic_size(source.bootstrap, source.topic)
        await eventually(lambda: _equals(applied_count(engine, name), size))
        live = await checksum(engine)

        # Scribble on the live table: a rebuild from the log must put it right.
        async with engine.begin() as connection:
            from sqlalchemy import text  # noqa: PLC0415

            await connection.execute(text("UPDATE test_counts SET total = -1"))
        await rebuild(the_projection, engine=engine, bootstrap_servers=source.bootstrap)
        assert await checksum(engine) == live

        after = await source.store.append("rb-probe", [Counted(amount=41)], expected_version=1)
        await source.publish_all()
        await wait_for_position(
            engine,
            name,
            topic=source.topic,
            stream_id="rb-probe",
            position=after.last_position,
            partitions=6,
            timeout_s=60,
        )
        async with engine.connect() as connection:
            from tests.integration.shared.kit import test_counts  # noqa: PLC0415

            row = (
                await connection.execute(
                    test_counts.select().where(test_counts.c.stream_id == "rb-probe")
                )
            ).one()
        assert (row.events, row.total) == (2, 42)
    finally:
        stop.set()
        await task
    await engine.dispose()
