"""With Kafka stopped, appends still succeed; once it is back, every event arrives, in stream order.

This stops the very broker the test run uses (deploy/kafka-down.sh, deploy/kafka-up.sh), so it
carries
the `broker_restart` marker: tests/conftest.py runs it after every other test.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable

import pytest

from shared.clock import SystemClock
from shared.eventstore import EventStore
from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.infra.test_broker_restart import port_open, run_script
from tests.integration.shared.kit import Counted, prepare
from tests.integration.shared.test_outbox import eventually, outbox_size, read_topic

pytestmark = [pytest.mark.infra, pytest.mark.broker_restart]


async def test_appends_succeed_while_kafka_is_down_and_all_arrive_when_it_is_back(
    fresh_database: DatabaseFactory, kafka_bootstrap: str, unique_topic: TopicFactory
) -> None:
    url = fresh_database("outbox_kafka_down")
    engine = await prepare(url, with_views=False)
    store = await EventStore.open(url, source="/tests", clock=SystemClock())
    topic = await unique_topic("outbox-down", partitions=6)
    stop = asyncio.Event()
    relay = OutboxRelay(url, topic=topic, bootstrap_servers=kafka_bootstrap, max_backoff_s=1.0)
    await run_script("kafka-down.sh", timeout_s=60)
    try:
        assert not port_open(kafka_bootstrap)
        task = asyncio.create_task(relay.run(stop))
        for round_ in range(10):
            for stream in range(12):
                result = await store.append(
                    f"down-{stream}", [Counted(amount=round_)], expected_version=round_
                )
                assert result.version == round_ + 1  # a 2xx answer: durable, though Kafka is down
        await asyncio.sleep(1.0)  # the relay is trying (and backing off) meanwhile
        assert await outbox_size(engine) == 120
        assert relay.published == 0
    finally:
        await run_script("kafka-up.sh", timeout_s=180)
    try:
        await eventually(lambda: _zero(outbox_size(engine)), timeout_s=120)
    finally:
        stop.set()
        await task
    received = await read_topic(kafka_bootstrap, topic, 120, timeout_s=60)
    by_stream: dict[str, list[int]] = defaultdict(list)
    for event in received:
        by_stream[event.stream_id].append(event.version)
    assert dict(by_stream) == {f"down-{n}": list(range(1, 11)) for n in range(12)}
    await store.close()
    await engine.dispose()


async def _zero(value: Awaitable[int]) -> bool:
    return await value == 0
