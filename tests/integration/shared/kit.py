"""Test kit for the kernel's integration tests: a tiny event type, a counting projection, setup.

The projection folds `Counted` events into `test_counts` (per stream: how many, their sum, the last
version) and `Poisoned` events into an error, so tests can compare read models by checksum and
watch a poison event go to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from shared.consumer import Projection
from shared.events import Event
from shared.events.envelope import RecordedEvent
from shared.schema import create_kernel_tables


class Counted(Event):
    """A number counted on a stream (test event)."""

    type: Literal["Counted"] = "Counted"
    amount: int
    unit_id: str | None = None


class Poisoned(Event):
    """An event the test projection refuses to apply (test event)."""

    type: Literal["Poisoned"] = "Poisoned"
    why: str


metadata = MetaData()
test_counts = Table(
    "test_counts",
    metadata,
    Column("stream_id", Text, primary_key=True),
    Column("events", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("last_version", Integer, nullable=False),
)


_insert = insert(test_counts)
# Built once: a statement with bound parameters compiles once (SQLAlchemy's cache), and the batch
# path sends every row of a batch in one executemany.
UPSERT = _insert.on_conflict_do_update(
    index_elements=["stream_id"],
    set_={
        "events": test_counts.c.events + _insert.excluded.events,
        "total": test_counts.c.total + _insert.excluded.total,
        "last_version": _insert.excluded.last_version,
    },
)


async def apply(recorded: RecordedEvent, session: AsyncSession) -> None:
    """Fold one event into `test_counts`; a `Poisoned` event raises."""
    event = recorded.event()
    match event:
        case Counted():
            await session.execute(
                UPSERT,
                {
                    "stream_id": recorded.stream_id,
                    "events": 1,
                    "total": event.amount,
                    "last_version": recorded.version,
                },
            )
        case Poisoned():
            raise ValueError(f"refused: {event.why}")
        case _:
            pass


async def apply_batch(events: Sequence[RecordedEvent], session: AsyncSession) -> None:
    """Fold a batch: sum per stream in memory, then one upsert row per stream (same effect)."""
    rows: dict[str, dict[str, int | str]] = {}
    for recorded in events:
        event = recorded.event()
        match event:
            case Counted():
                row = rows.setdefault(
                    recorded.stream_id,
                    {"stream_id": recorded.stream_id, "events": 0, "total": 0, "last_version": 0},
                )
                row["events"] = int(row["events"]) + 1
                row["total"] = int(row["total"]) + event.amount
                row["last_version"] = recorded.version
            case Poisoned():
                raise ValueError(f"refused: {event.why}")
            case _:
                pass
    if rows:
        await session.execute(UPSERT, list(rows.values()))


def projection(name: str, topics: list[str], *, batched: bool = True) -> Projection:
    """Return the counting projection over `topics` (with its batch fast path unless told)."""
    return Projection(
        name, topics, apply=apply, metadata=metadata, apply_batch=apply_batch if batched else None
    )


async def prepare(url: str, *, with_views: bool = True) -> AsyncEngine:
    """Create the kernel tables (and the test view) in the database at `url`; return an engine."""
    engine = create_async_engine(url, pool_size=5)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
        await create_kernel_tables(connection)
        if with_views:
            await connection.run_sync(metadata.create_all)
    return engine


async def checksum(engine: AsyncEngine) -> tuple[int, str]:
    """Return (rows, sha256) of `test_counts` in stream order: equal models, equal checksums."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(test_counts).order_by(test_counts.c.stream_id))
        ).all()
    digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return len(rows), digest
