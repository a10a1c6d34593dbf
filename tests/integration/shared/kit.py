"""Test kit for the kernel's integration tests: a tiny event type, a counting projection, setup.

The projection folds `Counted` events into `test_counts` (per stream: how many, their sum, the last
version) and `Poisoned` events into an error, so tests can compare read models by checksum and
watch a poison event go to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
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


async def apply(recorded: RecordedEvent, session: AsyncSession) -> None:
    """Fold one event into `test_counts`; a `Poisoned` event raises."""
    event = recorded.event()
    match event:
        case Counted():
            statement = insert(test_counts).values(
                stream_id=recorded.stream_id,
                events=1,
                total=event.amount,
                last_version=recorded.version,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["stream_id"],
                    set_={
                        "events": test_counts.c.events + 1,
                        "total": test_counts.c.total + event.amount,
                        "last_version": recorded.version,
                    },
                )
            )
        case Poisoned():
            raise ValueError(f"refused: {event.why}")
        case _:
            pass


def projection(name: str, topics: list[str]) -> Projection:
    """Return the counting projection over `topics`."""
    return Projection(name, topics, apply=apply, metadata=metadata)


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
