"""The projector runner: Kafka topics → a pure `apply(event, session)` → read models, exactly once.

Why this exists: every read model (inventory, compliance, registry view, authorization) is a fold of
events. The runner consumes topics in batches and commits the read-model changes *and* the consumed
offsets (per projection, topic and partition) in one PostgreSQL transaction, so a crash at any point
neither applies an event twice nor skips one: on restart it seeks to the offsets stored in the
database, which are the truth; the offsets committed to Kafka afterwards only feed lag tooling.

Usage (from a service's worker.py)::

    projection = Projection("compliance.unit-status", ["units.events", "equipment.events"],
                            apply=projector.apply, metadata=views.metadata)
    await ProjectorRunner(projection, engine=engine, bootstrap_servers=...).run(stop)
    await rebuild(projection, engine=engine, bootstrap_servers=...)   # replay from 0, swap in

Notes:
- Duplicates: records at or below the stored offset are skipped; so are re-published events (an
  outbox relay that died after publishing) whose source position is at or below the highest one
  seen on that partition, because a relay publishes each partition in position order.
- A poison event (not decodable, unknown type, or `apply` raising) goes to `<projection>.dlq` with
  the reason in its headers, before the batch commits, and the loop goes on. A batch is first
  applied optimistically in one transaction (through `apply_batch` when the projection has one,
  one span for the batch linked to the events' traces; else `apply` per event, one span each); if
  anything fails it is re-run event by event under savepoints to isolate the culprit, so the fast
  path pays for no savepoints.
- Each batch transaction first takes a transaction-scoped advisory lock named after the projection:
  two runners of one projection (a rebalance overlap) and a rebuild's swap never interleave.
- `wait_for_position` lets a reader wait, bounded, until the projection applied a given write.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from opentelemetry import trace
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.events.base import EventSchemaTooNewError, UnknownEventTypeError
from shared.events.envelope import EnvelopeDecodeError, RecordedEvent
from shared.logging import event_context
from shared.outbox import advisory_key, sleep_or_stop
from shared.partitioning import partition_for
from shared.telemetry import context_from_traceparent

log = structlog.get_logger(__name__)
tracer = trace.get_tracer(__name__)

Apply = Callable[[RecordedEvent, AsyncSession], Awaitable[None]]
ApplyBatch = Callable[[Sequence[RecordedEvent], AsyncSession], Awaitable[None]]
MAX_SPAN_LINKS = 128


@dataclass(frozen=True)
class Projection:
    """A named fold of some topics into tables: the unit that runs, is tracked, and is rebuilt."""

    name: str
    topics: Sequence[str]
    apply: Apply
    metadata: MetaData | None = None
    dlq_partitions: int = 1
    # Optional fast path: fold a whole batch at once (e.g. one multi-row upsert). It must have the
    # effect of `apply` on each event in order; a failing batch is redone with `apply`, per event.
    apply_batch: ApplyBatch | None = None

    @property
    def dlq_topic(self) -> str:
        """Return the dead-letter topic of this projection."""
        return f"{self.name}.dlq"


class PoisonEventError(Exception):
    """An event that cannot be applied; it goes to the dead-letter topic."""


@dataclass
class _Stored:
    offset: int
    source_position: int


@dataclass
class BatchStats:
    """What one batch did."""

    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    partitions: dict[TopicPartition, _Stored] = field(default_factory=dict)
    poison: list[tuple[Any, str]] = field(default_factory=list)


async def load_offsets(
    connection: AsyncConnection, projection: str, *, lock: bool = False
) -> dict[TopicPartition, _Stored]:
    """Return the stored offsets of `projection` (optionally locking its batch lock first)."""
    if lock:
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": advisory_key(f"projection:{projection}")},
        )
    rows = await connection.execute(
        text(
            'SELECT topic, partition, "offset", source_position FROM projection_offsets'
            " WHERE projection = :p"
        ),
        {"p": projection},
    )
    return {
        TopicPartition(r.topic, r.partition): _Stored(r.offset, r.source_position) for r in rows
    }


async def store_offsets(
    connection: AsyncConnection, projection: str, offsets: dict[TopicPartition, _Stored]
) -> None:
    """Upsert the offsets of `projection` (inside the caller's transaction)."""
    if not offsets:
        return
    await connection.execute(
        text(
            "INSERT INTO projection_offsets"
            ' (projection, topic, partition, "offset", source_position,'
            " updated_at) VALUES (:p, :t, :n, :o, :s, now())"
            " ON CONFLICT (projection, topic, partition)"
            ' DO UPDATE SET "offset" = EXCLUDED."offset",'
            " source_position = EXCLUDED.source_position, updated_at = EXCLUDED.updated_at"
        ),
        [
            {
                "p": projection,
                "t": tp.topic,
                "n": tp.partition,
                "o": s.offset,
                "s": s.source_position,
            }
            for tp, s in offsets.items()
        ],
    )


def decode_record(record: Any) -> RecordedEvent:
    """Decode a Kafka record into a recorded event, checking its type is known; raise on poison."""
    try:
        event = RecordedEvent.from_kafka(record.key, record.value, record.headers or ())
        event.event()
    except (EnvelopeDecodeError, UnknownEventTypeError, EventSchemaTooNewError, ValueError) as exc:
        raise PoisonEventError(f"undecodable: {exc}") from exc
    return event


class ProjectorRunner:
    """Runs one projection: consume, apply, commit read model + offsets together, repeat."""

    def __init__(
        self,
        projection: Projection,
        *,
        engine: AsyncEngine,
        bootstrap_servers: str,
        batch_size: int = 5000,
        poll_timeout_ms: int = 200,
        kafka_commit_interval_s: float = 1.0,
        offsets_name: str | None = None,
        schema: str | None = None,
    ) -> None:
        self.projection = projection
        self.engine = engine
        self.bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.offsets_name = offsets_name or projection.name
        # During a rebuild the same apply writes into a shadow schema.
        self._execution_options: dict[str, Any] = (
            {"schema_translate_map": {None: schema}} if schema else {}
        )
        self.kafka_commit_interval_s = kafka_commit_interval_s
        self._to_commit: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self.applied = 0
        self.dead_lettered = 0
        self._dlq: AIOKafkaProducer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; survive broker outages with backoff."""
        await ensure_topic(
            self.bootstrap_servers, self.projection.dlq_topic, self.projection.dlq_partitions
        )
        backoff = 0.2
        while not stop.is_set():
            consumer = self._consumer(group=True)
            try:
                consumer.subscribe(
                    list(self.projection.topics), listener=_SeekToStored(self, consumer)
                )
                await consumer.start()
                self._dlq = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers, enable_idempotence=True
                )
                await self._dlq.start()
                backoff = 0.2
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=self.poll_timeout_ms, max_records=self.batch_size
                    )
                    if batch:
                        await self.process(batch, consumer)
            except KafkaError as exc:
                log.warning(
                    "projector_kafka_error", projection=self.projection.name, error=str(exc)
                )
                await sleep_or_stop(stop, backoff)
                backoff = min(5.0, backoff * 2)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                if self._dlq is not None:
                    with contextlib.suppress(Exception):
                        await self._dlq.stop()
                    self._dlq = None

    def _consumer(self, *, group: bool) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.projection.name if group else None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def stored_offsets(self) -> dict[TopicPartition, _Stored]:
        """Return the offsets this runner's projection has committed to the database."""
        async with self.engine.connect() as connection:
            return await load_offsets(connection, self.offsets_name)

    async def process(
        self, batch: dict[TopicPartition, list[Any]], consumer: AIOKafkaConsumer | None
    ) -> BatchStats:
        """Apply one `getmany` batch in one transaction; return what it did."""
        # A batch decodes into tens of thousands of small objects that all stay alive until it
        # commits, so the cyclic collector, were it running, would pass over them again and
        # again and promote them into the oldest generation, whose full passes then grow (in
        # `make bench` a third of the projector's time went to collections). So it is paused for
        # the batch: reference counting frees the batch's objects once it is done, and the
        # collector resumes right after, for whatever cycles anything made meanwhile. The pause
        # lasts one batch transaction; should that hang (database or broker down), only cyclic
        # garbage waits for it, reference counting frees everything else as usual.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            stats = await self._process(batch, consumer, careful=False)
        except Exception as exc:
            log.info(
                "projector_batch_retry_carefully", projection=self.projection.name, error=repr(exc)
            )
            stats = await self._process(batch, consumer, careful=True)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.applied += stats.applied
        self.dead_lettered += stats.dead_lettered
        for tp, stored in stats.partitions.items():
            self._to_commit[tp] = stored.offset + 1
        now = time.monotonic()
        if (
            consumer is not None
            and self._to_commit
            and consumer._group_id is not None
            and now - self._committed_at >= self.kafka_commit_interval_s
        ):
            # After the database commit, and at most once per interval: Kafka's committed offsets
            # only feed lag monitoring (the database's offsets are the truth), so a broker round
            # trip per batch would cost throughput for nothing.
            with contextlib.suppress(KafkaError):
                await consumer.commit(dict(self._to_commit))
                self._to_commit.clear()
                self._committed_at = now
        return stats

    async def _process(
        self,
        batch: dict[TopicPartition, list[Any]],
        consumer: AIOKafkaConsumer | None,
        *,
        careful: bool,
    ) -> BatchStats:
        stats = BatchStats()
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            connection = await session.connection(execution_options=self._execution_options)
            stored = await load_offsets(connection, self.offsets_name, lock=True)
            to_apply = self._select(batch, stored, consumer, stats)
            if careful:
                for record, event in to_apply:
                    reason = await self._apply_one(session, event, savepoint=True)
                    if reason is None:
                        stats.applied += 1
                    else:
                        stats.poison.append((record, reason))
            elif self.projection.apply_batch is not None:
                await self._apply_batch([event for _, event in to_apply], session)
                stats.applied += len(to_apply)
            else:
                for _, event in to_apply:
                    await self._apply_one(session, event, savepoint=False)
                stats.applied += len(to_apply)
            stats.dead_lettered = len(stats.poison)
            # Sent only once the batch is known to commit (the optimistic pass may be redone), and
            # before the commit: a poison event is never both skipped and lost.
            for record, reason in stats.poison:
                await self._dead_letter(record, reason)
            await store_offsets(connection, self.offsets_name, stats.partitions)
        return stats

    def _select(
        self,
        batch: dict[TopicPartition, list[Any]],
        stored: dict[TopicPartition, _Stored],
        consumer: AIOKafkaConsumer | None,
        stats: BatchStats,
    ) -> list[tuple[Any, RecordedEvent]]:
        """Decode the batch; set aside poison, skip what was applied, note the new offsets."""
        to_apply: list[tuple[Any, RecordedEvent]] = []
        for tp, records in batch.items():
            current = stored.get(tp)
            if current is not None and records and records[0].offset > current.offset + 1:
                # The stored offset is behind what we fetched (a rebuild was swapped in, or
                # another runner wrote less): go back rather than skip events.
                if consumer is not None:
                    consumer.seek(tp, current.offset + 1)
                continue
            position_floor = current.source_position if current else 0
            last_offset = current.offset if current else -1
            for record in records:
                if record.offset <= last_offset:
                    stats.skipped += 1
                    continue
                last_offset = record.offset
                try:
                    event = decode_record(record)
                except PoisonEventError as exc:
                    stats.poison.append((record, str(exc)))
                    position_floor = max(position_floor, _position_of(record))
                    continue
                if event.position and event.position <= position_floor:
                    stats.skipped += 1  # a re-published duplicate of an applied event
                    continue
                position_floor = max(position_floor, event.position)
                to_apply.append((record, event))
            stats.partitions[tp] = _Stored(last_offset, position_floor)
        return to_apply

    async def _apply_one(
        self, session: AsyncSession, event: RecordedEvent, *, savepoint: bool
    ) -> str | None:
        """Apply one event in its own span; return None, or (with a savepoint) why it failed."""
        with (
            event_context(
                event_id=event.event_id, stream_id=event.stream_id, unit_id=event.unit_id
            ),
            tracer.start_as_current_span(
                f"project {event.type}",
                context=context_from_traceparent(event.traceparent),
                attributes={
                    "projection": self.projection.name,
                    "event.id": str(event.event_id),
                    "event.stream_id": event.stream_id,
                },
            ),
        ):
            if not savepoint:
                await self.projection.apply(event, session)
                return None
            try:
                async with session.begin_nested():
                    await self.projection.apply(event, session)
            except Exception as exc:
                return f"apply failed: {exc!r}"
            return None

    async def _apply_batch(self, events: list[RecordedEvent], session: AsyncSession) -> None:
        """Apply a whole batch at once; one span linked to each event's trace (up to a bound)."""
        assert self.projection.apply_batch is not None  # noqa: S101  (checked by the caller)
        links = [
            trace.Link(span_context)
            for event in events[:MAX_SPAN_LINKS]
            if event.traceparent
            and (
                span_context := trace.get_current_span(
                    context_from_traceparent(event.traceparent)
                ).get_span_context()
            ).is_valid
        ]
        with tracer.start_as_current_span(
            "project batch",
            links=links,
            attributes={"projection": self.projection.name, "batch.size": len(events)},
        ):
            await self.projection.apply_batch(events, session)

    async def _dead_letter(self, record: Any, reason: str) -> None:
        log.warning(
            "projector_dead_letter",
            projection=self.projection.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        if self._dlq is None:
            self._dlq = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, enable_idempotence=True
            )
            await self._dlq.start()
        headers = [
            *(record.headers or ()),
            ("dlq-reason", reason.encode("utf-8", "replace")[:4000]),
            ("dlq-projection", self.projection.name.encode()),
            ("dlq-topic", record.topic.encode()),
            ("dlq-partition", str(record.partition).encode()),
            ("dlq-offset", str(record.offset).encode()),
        ]
        await self._dlq.send_and_wait(
            self.projection.dlq_topic, value=record.value, key=record.key, headers=headers
        )

    async def close(self) -> None:
        """Stop the dead-letter producer if one was started outside `run`."""
        if self._dlq is not None:
            await self._dlq.stop()
            self._dlq = None


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped upstream base
    """On assignment, position each partition after the offset stored in the database."""

    def __init__(self, runner: ProjectorRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Nothing to flush: every batch committed its offsets with its changes."""

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Seek to the database's offsets; partitions never applied start at the beginning."""
        stored = await self._runner.stored_offsets()
        for tp in assigned:
            if tp in stored:
                self._consumer.seek(tp, stored[tp].offset + 1)
            else:
                await self._consumer.seek_to_beginning(tp)


def _position_of(record: Any) -> int:
    for name, value in record.headers or ():
        if name == "ce_position":
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


async def ensure_topic(bootstrap_servers: str, topic: str, partitions: int = 1) -> None:
    """Create `topic` (kept for ever) if it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"},
                )
            ]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


# --- read your writes -------------------------------------------------------------------------


class ProjectionLagTimeoutError(TimeoutError):
    """The projection did not reach the requested position within the time allowed."""


async def wait_for_position(
    engine: AsyncEngine,
    projection: str,
    *,
    topic: str,
    stream_id: str,
    position: int,
    partitions: int,
    timeout_s: float = 5.0,
    poll_s: float = 0.05,
) -> None:
    """Wait until `projection` applied the event at `position` of `stream_id`; raise on timeout."""
    partition = partition_for(stream_id, partitions)
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT source_position FROM projection_offsets"
        " WHERE projection = :p AND topic = :t AND partition = :n"
    )
    while True:
        async with engine.connect() as connection:
            reached = (
                await connection.execute(query, {"p": projection, "t": topic, "n": partition})
            ).scalar()
        if reached is not None and reached >= position:
            return
        if time.monotonic() >= deadline:
            raise ProjectionLagTimeoutError(
                f"{projection} has not reached position {position} of {topic} within {timeout_s}s"
            )
        await asyncio.sleep(poll_s)


# --- rebuild ----------------------------------------------------------------------------------

_IDENT = re.compile(r"[^a-z0-9_]")


def _schema_name(prefix: str, projection: str) -> str:
    return f"{prefix}_{_IDENT.sub('_', projection.lower())}"[:63]


async def rebuild(
    projection: Projection,
    *,
    engine: AsyncEngine,
    bootstrap_servers: str,
    batch_size: int = 2000,
) -> int:
    """Replay `projection` from offset 0 into fresh tables, then swap them in atomically.

    The live tables keep serving (and the live runner keeps applying) while the shadow copy is
    built; the swap takes the projection's batch lock, lets the shadow copy catch up to whatever
    the live runner had applied, then moves the tables and offsets in one transaction. The live
    runner goes on from the swapped-in offsets. Return the number of events applied.
    """
    if projection.metadata is None:
        raise ValueError(f"projection {projection.name} declares no tables to rebuild")
    shadow = _schema_name("rebuild", projection.name)
    retired = _schema_name("retired", projection.name)
    offsets_name = f"{projection.name}#rebuild"
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{shadow}" CASCADE'))
        await connection.execute(text(f'CREATE SCHEMA "{shadow}"'))
        await connection.execute(
            text("DELETE FROM projection_offsets WHERE projection = :p"), {"p": offsets_name}
        )
        shadow_conn = await connection.execution_options(schema_translate_map={None: shadow})
        await shadow_conn.run_sync(projection.metadata.create_all)

    runner = ProjectorRunner(
        projection,
        engine=engine,
        bootstrap_servers=bootstrap_servers,
        batch_size=batch_size,
        offsets_name=offsets_name,
        schema=shadow,
    )
    consumer = runner._consumer(group=False)
    await consumer.start()
    try:
        partitions = []
        for topic in projection.topics:
            # No subscription, so ask for the topic's metadata explicitly.
            known = await consumer._client._wait_on_metadata(topic)
            partitions += [TopicPartition(topic, p) for p in sorted(known)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)

        async def catch_up(targets: dict[TopicPartition, int]) -> None:
            while True:
                pending = {tp for tp, end in targets.items() if await consumer.position(tp) < end}
                if not pending:
                    return
                batch = await consumer.getmany(*pending, timeout_ms=500, max_records=batch_size)
                if batch:
                    await runner.process(batch, consumer)

        await catch_up(await consumer.end_offsets(partitions))
        async with engine.begin() as connection:
            live = await load_offsets(connection, projection.name, lock=True)
            # The live runner is now blocked: make the copy at least as far as it got.
            await catch_up({tp: s.offset + 1 for tp, s in live.items() if tp in set(partitions)})
            rebuilt = await load_offsets(connection, offsets_name)
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE'))
            await connection.execute(text(f'CREATE SCHEMA "{retired}"'))
            for table in projection.metadata.sorted_tables:
                await connection.execute(
                    text(f'ALTER TABLE public."{table.name}" SET SCHEMA "{retired}"')
                )
                await connection.execute(
                    text(f'ALTER TABLE "{shadow}"."{table.name}" SET SCHEMA public')
                )
            await connection.execute(
                text("DELETE FROM projection_offsets WHERE projection IN (:p, :r)"),
                {"p": projection.name, "r": offsets_name},
            )
            await store_offsets(connection, projection.name, rebuilt)
            await connection.execute(text(f'DROP SCHEMA "{retired}" CASCADE'))
            await connection.execute(text(f'DROP SCHEMA "{shadow}" CASCADE'))
    finally:
        await consumer.stop()
        await runner.close()
    log.info("projection_rebuilt", projection=projection.name, events=runner.applied)
    return runner.applied
