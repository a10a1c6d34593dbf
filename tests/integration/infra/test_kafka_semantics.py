"""The broker is the real one and behaves as the kernel needs (issue 2, acceptance).

- an idempotent producer (acks=all) round trip keeps every key's order, with no duplicate;
- a transactional producer with `send_offsets_to_transaction`: a read_committed consumer never sees
  aborted messages and sees committed ones, and the group offset moves only with the commit;
- a consumer group that commits, stops, and resumes from the committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.conftest import GroupFactory, TopicFactory
from tests.integration.infra.kafka_helpers import consume, drain

pytestmark = pytest.mark.infra


async def eventually_committed(
    consumer: AIOKafkaConsumer, partition: TopicPartition, timeout_s: float = 15.0
) -> int | None:
    """Return the group's committed offset for `partition` once it is set (None at the deadline)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                offset: int | None = await consumer.committed(partition)
                if offset is not None:
                    return offset
                await asyncio.sleep(0.1)
    return None


async def test_idempotent_producer_round_trip_keeps_order_per_key(
    kafka_bootstrap: str, unique_topic: TopicFactory
) -> None:
    topic = await unique_topic("idempotent", partitions=3)
    keys = [f"stream-{n}" for n in range(5)]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=key.encode(), value=f"{key}:{version}".encode())
            for version in range(20)
            for key in keys
        ]
        metadata = [await future for future in futures]
    finally:
        await producer.stop()
    assert len({(m.partition, m.offset) for m in metadata}) == 100

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = await consume(consumer, 100)
        assert await drain(consumer, quiet_s=0.5) == []
    finally:
        await consumer.stop()

    for key in keys:
        versions = [int(r.value.decode().split(":")[1]) for r in records if r.key == key.encode()]
        assert versions == list(range(20)), key
        assert len({r.partition for r in records if r.key == key.encode()}) == 1


async def test_transactions_hide_aborted_messages_and_commit_offsets_atomically(
    kafka_bootstrap: str, unique_topic: TopicFactory, unique_group: GroupFactory
) -> None:
    source = await unique_topic("tx-source", partitions=1)
    sink = await unique_topic("tx-sink", partitions=1)
    group = unique_group("tx")
    source_partition = TopicPartition(source, 0)

    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await plain.start()
    try:
        for n in range(4):
            await plain.send_and_wait(source, value=f"in-{n}".encode())
    finally:
        await plain.stop()

    reader = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}"
    )
    await reader.start()
    await producer.start()
    try:
        first, second = await consume(reader, 2), await consume(reader, 2)

        await producer.begin_transaction()
        for record in first:
            await producer.send(sink, value=b"aborted:" + record.value)
        await producer.send_offsets_to_transaction({source_partition: first[-1].offset + 1}, group)
        await producer.abort_transaction()
        assert await reader.committed(source_partition) is None

        async with producer.transaction():
            for record in second:
                await producer.send(sink, value=b"committed:" + record.value)
            await producer.send_offsets_to_transaction(
                {source_partition: OffsetAndMetadata(second[-1].offset + 1, "")}, group
            )
        # EndTxn answers once the commit is decided; the coordinator writes the markers that make
        # the offsets visible right after, so wait for them (bounded) instead of reading once.
        assert await eventually_committed(reader, source_partition) == 4
    finally:
        await producer.stop()
        await reader.stop()

    committed_view = AIOKafkaConsumer(
        sink,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    raw_view = AIOKafkaConsumer(
        sink,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_uncommitted",
    )
    await committed_view.start()
    await raw_view.start()
    try:
        await consume(committed_view, 2)  # positions the view; checked in full below
        await committed_view.seek_to_beginning()
        seen_committed = [r.value for r in await drain(committed_view)]
        seen_raw = [r.value for r in await drain(raw_view)]
    finally:
        await committed_view.stop()
        await raw_view.stop()

    assert seen_committed == [b"committed:in-2", b"committed:in-3"]
    # The aborted messages were really written: only the isolation level hides them.
    assert seen_raw == [b"aborted:in-0", b"aborted:in-1", b"committed:in-2", b"committed:in-3"]


async def test_consumer_group_resumes_from_its_committed_offset(
    kafka_bootstrap: str, unique_topic: TopicFactory, unique_group: GroupFactory
) -> None:
    topic = await unique_topic("resume", partitions=1)
    group = unique_group("resume")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(topic, value=str(n).encode())
    finally:
        await producer.stop()

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = member()
    await first.start()
    try:
        records = await consume(first, 4)
        await first.commit({TopicPartition(topic, 0): records[-1].offset + 1})
    finally:
        await first.stop()
    assert [r.value for r in records] == [b"0", b"1", b"2", b"3"]

    second = member()
    await second.start()
    try:
        rest = await consume(second, 6)
        assert await drain(second, quiet_s=0.5) == []
    finally:
        await second.stop()
    assert [r.value for r in rest] == [str(n).encode() for n in range(4, 10)]
