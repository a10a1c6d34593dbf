"""`shared.eventstore.Fill` (kernel_0005's `ictc_append_filled`) on real PostgreSQL.

Why here: the equipment service is its one user (an item's asset number is taken inside the
registration's append, so the unit's counter row is locked for that statement only). The value goes
where the placeholder stands, the database hashes the events with it in place (the chain verifies),
and a counter it comes from moves only when the append commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.eventstore import EventStore, Fill, VersionConflictError
from shared.hashchain import verify
from tests.conftest import DatabaseFactory
from tests.integration.shared.kit import Counted, Poisoned, prepare

pytestmark = pytest.mark.infra

# A counter as a service keeps one (a unit's asset numbers): its next value as text.
_COUNTER_DDL = (
    "CREATE TABLE IF NOT EXISTS test_counter (id int PRIMARY KEY, last int NOT NULL);"
    " CREATE OR REPLACE FUNCTION test_next(p_prefix text) RETURNS text LANGUAGE sql AS $$"
    " INSERT INTO test_counter AS c VALUES (1, 1) ON CONFLICT (id)"
    " DO UPDATE SET last = c.last + 1 RETURNING p_prefix || '-' || last $$"
)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(fresh_database: DatabaseFactory) -> AsyncIterator[AsyncEngine]:
    engine = await prepare(fresh_database("fill"), with_views=False)
    async with engine.begin() as connection:
        await connection.execute(text(_COUNTER_DDL))
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def store(engine: AsyncEngine, fresh_database: DatabaseFactory) -> AsyncIterator[EventStore]:
    store = await EventStore.open(fresh_database("fill"), source="/tests", clock=SystemClock())
    yield store
    await store.close()


async def counter(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT max(last) FROM test_counter"))).scalar()
        return int(row or 0)


@pytest.mark.parametrize("commit_with_append", [False, True])
async def test_a_filled_value_is_taken_in_the_append_and_hashed_with_the_events(
    store: EventStore, engine: AsyncEngine, commit_with_append: bool
) -> None:
    before = await counter(engine)
    stream = f"filled-{commit_with_append}"
    placeholder = "@value:0123456789abcdef"
    async with store.transaction() as tx:
        if commit_with_append:
            tx.commit_with_next_flush()
        tx.fill_in(Fill(placeholder, "test_next(%s)", ("N",)))
        tx.append(
            stream,
            [Poisoned(why=f"number {placeholder}"), Counted(amount=1)],
            expected_version=0,
        )
        (result,) = await tx.flush()
    value = f"N-{before + 1}"
    assert await counter(engine) == before + 1
    assert [e.data for e in result.events] == [
        {"why": f"number {value}"},
        {"amount": 1, "unit_id": None},
    ]
    loaded = await store.load(stream)
    assert [e.data for e in loaded] == [e.data for e in result.events]
    assert [e.hash for e in loaded] == [e.hash for e in result.events]
    assert verify(loaded) == []  # the database hashed the text with the value in place


async def test_a_fill_is_not_taken_when_no_event_holds_it_nor_when_the_append_fails(
    store: EventStore, engine: AsyncEngine
) -> None:
    before = await counter(engine)
    async with store.transaction() as tx:
        tx.fill_in(Fill("@value:absent", "test_next(%s)", ("N",)))
        tx.append("fill-unused", [Counted(amount=1)], expected_version=0)
    assert await counter(engine) == before  # no event held it: the counter was not touched
    assert verify(await store.load("fill-unused")) == []

    with pytest.raises(VersionConflictError):
        await filled_append(store, "fill-unused", "test_next(%s)", ("N",))
    assert await counter(engine) == before  # rolled back with the append

    with pytest.raises(Exception, match="cannot stand verbatim"):
        await filled_append(store, "fill-quoted", "%s", ('a"b',))
    assert await store.load("fill-quoted") == []


async def filled_append(
    store: EventStore, stream: str, value_sql: str, params: tuple[str, ...]
) -> None:
    async with store.transaction() as tx:
        tx.fill_in(Fill("@value:x", value_sql, params))
        tx.append(stream, [Poisoned(why="@value:x")], expected_version=0)
