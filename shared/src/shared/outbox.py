"""The outbox relay: publishes committed events to Kafka, in order per stream, exactly one relay
active.

Why this exists: an append writes its events and their outbox rows in one transaction, so a 2xx
answer means the fact is durable even if Kafka is down at that moment. This relay then publishes the
outbox in position order with an idempotent producer (acks=all), key = stream id, and removes the
rows
the broker acknowledged. While Kafka is down it backs off and retries; nothing is lost and nothing
is
reordered within a stream.

Usage (from a service's worker.py)::

    relay = OutboxRelay(database_url, topic="equipment.events", bootstrap_servers=...)
    await relay.run(stop_event)

Notes:
- One relay per service publishes at a time: the leader holds a PostgreSQL session advisory lock on
a
  dedicated connection. Standbys poll for the lock; if the leader dies its connection closes, the
  lock is released, and a standby takes over from the first unpublished position, with no gap.
- Delivery is at-least-once (a leader that dies after the broker acknowledged but before deleting
the
  rows re-sends them). Projectors skip such duplicates by source position (`shared.consumer`), so
  each event still takes effect once.
- Records go to an explicit partition, `partition_for(stream id, partitions)` (Kafka's murmur2), so
a
  reader can tell which partition to watch for its own write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Sequence
from typing import Any

import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry import trace
from psycopg.rows import namedtuple_row

from shared.events.envelope import RecordedEvent
from shared.eventstore import libpq_url, record_from_row
from shared.partitioning import partition_for

log = structlog.get_logger(__name__)
tracer = trace.get_tracer(__name__)

_BATCH = (
    "SELECT e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data,"
    " e.metadata, e.unit_id, e.recorded_at, e.prevhash, e.hash"
    " FROM outbox o JOIN events e USING (position) ORDER BY o.position LIMIT %(limit)s"
)


def advisory_key(name: str) -> int:
    """Return a stable signed 64-bit key for a PostgreSQL advisory lock named `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    """Publishes the outbox of one service's event store to its topic."""

    def __init__(
        self,
        database_url: str,
        *,
        topic: str,
        bootstrap_servers: str,
        source: str = "",
        batch_size: int = 1000,
        idle_poll_s: float = 0.05,
        standby_poll_s: float = 0.5,
        max_backoff_s: float = 5.0,
        lock_name: str | None = None,
    ) -> None:
        self._conninfo = libpq_url(database_url)
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._source = source
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._standby_poll_s = standby_poll_s
        self._max_backoff_s = max_backoff_s
        self._lock_key = advisory_key(lock_name or f"outbox-relay:{topic}")
        self.is_leader = False
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set: wait to lead, then publish; step down on a lost connection."""
        backoff = 0.1
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as lock_conn:
                    if not await self._try_lock(lock_conn):
                        await sleep_or_stop(stop, self._standby_poll_s)
                        continue
                    self.is_leader = True
                    log.info("outbox_relay_leading", topic=self.topic)
                    try:
                        await self._lead(lock_conn, stop)
                    finally:
                        self.is_leader = False
                backoff = 0.1
            except (psycopg.OperationalError, KafkaError, OSError) as exc:
                log.warning(
                    "outbox_relay_retrying", topic=self.topic, error=str(exc), backoff_s=backoff
                )
                await sleep_or_stop(stop, backoff)
                backoff = min(self._max_backoff_s, backoff * 2) * (0.75 + random.random() / 2)  # noqa: S311

    async def _try_lock(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def _lead(self, lock_conn: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            producer = await self._start_producer(stop)
            if producer is None:
                return
            try:
                partitions = await self._partition_count(producer, stop)
                if partitions is None:
                    return
                while not stop.is_set():
                    # Still leader? A dead lock connection means another relay may lead now.
                    await lock_conn.execute("SELECT 1")
                    sent = await self.publish_batch(conn, producer, partitions)
                    if sent == 0:
                        await sleep_or_stop(stop, self._idle_poll_s)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()

    async def _start_producer(self, stop: asyncio.Event) -> AIOKafkaProducer | None:
        backoff = 0.1
        while not stop.is_set():
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                enable_idempotence=True,  # implies acks=all; no duplicates from producer retries
                linger_ms=5,
                max_batch_size=256 * 1024,
                request_timeout_ms=15000,
            )
            try:
                await producer.start()
                return producer
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("outbox_kafka_unavailable", error=str(exc), backoff_s=backoff)
                await sleep_or_stop(stop, backoff)
                backoff = min(self._max_backoff_s, backoff * 2)
        return None

    async def _partition_count(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> int | None:
        # aiokafka waits for ever on a topic that does not exist; a relay must stay stoppable and
        # say what is wrong instead.
        while not stop.is_set():
            try:
                known = await asyncio.wait_for(producer.partitions_for(self.topic), timeout=5)
                return len(known)
            except TimeoutError:
                log.error("outbox_topic_missing", topic=self.topic)
        return None

    async def publish_batch(
        self, conn: psycopg.AsyncConnection[Any], producer: AIOKafkaProducer, partitions: int
    ) -> int:
        """Publish the next batch of the outbox; return how many events were published."""
        cursor = conn.cursor(row_factory=namedtuple_row)
        await cursor.execute(_BATCH, {"limit": self._batch_size}, prepare=True)
        rows = await cursor.fetchall()
        if not rows:
            return 0
        events = [record_from_row(self._source, row) for row in rows]
        with tracer.start_as_current_span(
            "outbox publish",
            attributes={
                "messaging.destination.name": self.topic,
                "messaging.batch.message_count": len(events),
            },
        ):
            await self._send_all(producer, events, partitions)
        await conn.execute(
            "DELETE FROM outbox WHERE position = ANY(%s)", ([e.position for e in events],)
        )
        self.published += len(events)
        return len(events)

    async def _send_all(
        self, producer: AIOKafkaProducer, events: Sequence[RecordedEvent], partitions: int
    ) -> None:
        # send() only enqueues; gathering the futures lets the producer batch per partition while
        # the idempotent producer keeps each partition's order.
        futures = [
            await producer.send(
                self.topic,
                value=event.kafka_value(),
                key=event.kafka_key(),
                headers=event.kafka_headers(),
                partition=partition_for(event.stream_id, partitions),
            )
            for event in events
        ]
        await asyncio.gather(*futures)

    async def backlog(self) -> int:
        """Return how many events wait in the outbox (a metric: outbox backlog)."""
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            cursor = await conn.execute("SELECT count(*) FROM outbox")
            row = await cursor.fetchone()
            return int(row[0]) if row else 0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile (every background loop's pause)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
