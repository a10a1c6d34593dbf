"""Small helpers for the broker behaviour tests: bounded consumption, never sleep-and-hope."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def consume(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 30.0) -> list[Any]:
    """Return exactly `count` records from `consumer`; fail if they do not come by the deadline."""
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=500, max_records=count - len(records))
                for partition_records in batches.values():
                    records.extend(partition_records)
    except TimeoutError:
        raise AssertionError(f"got {len(records)} of {count} records in {timeout_s}s") from None
    return records


async def drain(consumer: AIOKafkaConsumer, quiet_s: float = 2.0) -> list[Any]:
    """Return every record that arrives until the consumer has been caught up for `quiet_s`.

    Used to prove an absence (aborted messages never show): "caught up" is checked against the
    partitions' end offsets, not assumed from silence alone.
    """
    records: list[Any] = []
    partitions = consumer.assignment()
    loop = asyncio.get_running_loop()
    caught_up_since: float | None = None
    async with asyncio.timeout(30 + quiet_s):
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for partition_records in batches.values():
                records.extend(partition_records)
            if batches:
                caught_up_since = None
                continue
            ends = await consumer.end_offsets(list(partitions))
            positions = {tp: await consumer.position(tp) for tp in partitions}
            # read_committed: the last stable offset may sit one past the data (the commit marker).
            if all(positions[tp] >= ends[tp] for tp in partitions):
                caught_up_since = caught_up_since or loop.time()
                if loop.time() - caught_up_since >= quiet_s:
                    return records


def partitions_of(topic: str, count: int) -> list[TopicPartition]:
    """Return the `count` partitions of `topic`."""
    return [TopicPartition(topic, number) for number in range(count)]
