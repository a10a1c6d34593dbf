"""The event store on real PostgreSQL: concurrency, atomicity, gap-free positions, hash chain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import FixedClock
from shared.events.envelope import Actor, RecordedEvent
from shared.eventstore import AppendContext, EventStore, Fill, VersionConflictError
from shared.hashchain import GENESIS, chain, chain_digest, verify
from shared.settings import DatabaseSettings
from tests.conftest import DatabaseFactory
from tests.integration.shared.kit import Counted, prepare

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(fresh_database: DatabaseFactory) -> AsyncIterator[AsyncEngine]:
    engine = await prepare(fresh_database("eventstore"))
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def store(engine: AsyncEngine, fresh_database: DatabaseFactory) -> AsyncIterator[EventStore]:
    store = await EventStore.open(
        fresh_database("eventstore"), source="/tests", clock=FixedClock(T0)
    )
    yield store
    await store.close()


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608


async def test_append_then_load_returns_the_events_with_metadata(store: EventStore) -> None:
    context = AppendContext(actor=Actor("teacher-1", "entry"))
    result = await store.append(
        "s-1",
        [Counted(amount=1), Counted(amount=2, unit_id="0551198")],
        expected_version=0,
        context=context,
    )
    assert result.version == 2
    loaded = await store.load("s-1")
    assert [e.version for e in loaded] == [1, 2]
    assert [e.position for e in loaded] == list(result.positions)
    assert loaded[1].unit_id == "0551198"
    assert loaded[0].actor == Actor("teacher-1", "entry")
    assert loaded[1].event() == Counted(amount=2, unit_id="0551198")
    assert loaded[0].recorded_at == T0
    # The result's recorded events (built when asked for) are the stored ones, envelope and all.
    assert result.events == tuple(loaded)


async def test_two_concurrent_appends_with_the_same_expected_version_one_wins(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append("race", [Counted(amount=0)], expected_version=0)
    before = await count(engine, "events")

    async def attempt(amount: int) -> int | Exception:
        try:
            result = await store.append(
                "race", [Counted(amount=amount), Counted(amount=amount)], expected_version=1
            )
        except VersionConflictError as exc:
            return exc
        return result.version

    outcomes = await asyncio.gather(*(attempt(n) for n in range(1, 9)))
    wins = [o for o in outcomes if isinstance(o, int)]
    conflicts = [o for o in outcomes if isinstance(o, VersionConflictError)]
    assert wins == [3]
    assert len(conflicts) == 7
    assert all(c.stream_id == "race" and c.actual is not None for c in conflicts)
    assert await count(engine, "events") == before + 2  # nothing partial from the losers
    assert [e.version for e in await store.load("race")] == [1, 2, 3]


async def test_multi_stream_append_is_atomic_when_one_stream_conflicts(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append("transfer-target", [Counted(amount=1)], expected_version=0)
    before_events, before_outbox = await count(engine, "events"), await count(engine, "outbox")

    async def transfer() -> None:
        async with store.transaction() as tx:
            tx.append("transfer-source", [Counted(amount=-1)], expected_version=0)
            tx.append("transfer-target", [Counted(amount=1)], expected_version=0)  # stale

    with pytest.raises(VersionConflictError) as raised:
        await transfer()
    assert raised.value.stream_id == "transfer-target"
    assert (raised.value.expected, raised.value.actual) == (0, 1)
    assert await count(engine, "events") == before_events
    assert await count(engine, "outbox") == before_outbox
    assert await store.load("transfer-source") == []


@pytest.mark.parametrize(("first", "second"), [(0, 2), (None, None), (0, None), (None, 2)])
async def test_a_stream_appended_to_twice_in_one_transaction_continues_from_the_first_append(
    store: EventStore, first: int | None, second: int | None
) -> None:
    stream, between = f"twice-{first}-{second}", f"between-{first}-{second}"
    other = Actor("teacher-2", "entry")
    async with store.transaction() as tx:
        tx.append(stream, [Counted(amount=1), Counted(amount=2)], expected_version=first)
        tx.append(between, [Counted(amount=5)], expected_version=0)
        tx.append(
            stream, [Counted(amount=3)], expected_version=second, context=AppendContext(other)
        )
    loaded = await store.load(stream)
    assert [(e.version, e.event()) for e in loaded] == [
        (1, Counted(amount=1)),
        (2, Counted(amount=2)),
        (3, Counted(amount=3)),
    ]
    assert [e.actor for e in loaded] == [None, None, other]  # each append keeps its context
    assert verify(loaded) == []
    # Each append's result is its own share of the stream, in the order they were queued.
    assert [r.events for r in tx.results] == [
        tuple(loaded[:2]),
        tuple(await store.load(between)),
        tuple(loaded[2:]),
    ]


async def test_a_stale_second_append_to_a_stream_in_one_transaction_conflicts_and_writes_nothing(
    store: EventStore, engine: AsyncEngine
) -> None:
    before_events, before_outbox = await count(engine, "events"), await count(engine, "outbox")

    async def append_twice() -> None:
        async with store.transaction() as tx:
            tx.append("twice-stale", [Counted(amount=1)], expected_version=0)
            tx.append("twice-stale", [Counted(amount=2)], expected_version=0)  # at 1 by then

    with pytest.raises(VersionConflictError) as raised:
        await append_twice()
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        "twice-stale", 0, 1
    )  # fmt: skip
    assert await count(engine, "events") == before_events
    assert await count(engine, "outbox") == before_outbox


async def test_an_append_without_events_in_a_transaction_checks_the_version_and_writes_nothing(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append("checked", [Counted(amount=1)], expected_version=0)
    last = await store.last_position()
    async with store.transaction() as tx:
        tx.append("checked", [], expected_version=1)
        tx.append("written-beside-a-check", [Counted(amount=2)], expected_version=0)
    checked, written = tx.results
    assert (checked.stream_id, checked.version, checked.positions, checked.events) == (
        "checked", 1, (), ()
    )  # fmt: skip
    assert written.positions == (last + 1,)  # the check took no position
    assert len(await store.load("checked")) == 1


@pytest.mark.parametrize("with_events_beside", [True, False])
async def test_a_failed_version_check_in_a_transaction_conflicts_and_writes_nothing(
    store: EventStore, engine: AsyncEngine, with_events_beside: bool
) -> None:
    stream = f"check-fails-{with_events_beside}"
    await store.append(stream, [Counted(amount=1)], expected_version=0)
    before_events, before_outbox = await count(engine, "events"), await count(engine, "outbox")

    async def check_stale() -> None:
        async with store.transaction() as tx:
            if with_events_beside:
                tx.append(f"{stream}-beside", [Counted(amount=2)], expected_version=0)
            tx.append(stream, [], expected_version=0)  # at 1

    with pytest.raises(VersionConflictError) as raised:
        await check_stale()
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (stream, 0, 1)
    assert await count(engine, "events") == before_events
    assert await count(engine, "outbox") == before_outbox


async def test_a_version_check_after_an_append_to_the_same_stream_sees_that_append(
    store: EventStore,
) -> None:
    async with store.transaction() as tx:
        tx.append("check-after", [Counted(amount=1), Counted(amount=2)], expected_version=0)
        tx.append("check-after", [], expected_version=2)
    assert [r.version for r in tx.results] == [2, 2]

    async def append_then_check_stale() -> None:
        async with store.transaction() as tx:
            tx.append("check-after", [Counted(amount=3)], expected_version=2)
            tx.append("check-after", [], expected_version=2)  # at 3 by then

    with pytest.raises(VersionConflictError) as raised:
        await append_then_check_stale()
    assert (raised.value.expected, raised.value.actual) == (2, 3)


async def test_a_passed_version_check_holds_until_the_transaction_commits(
    store: EventStore,
) -> None:
    await store.append("held", [Counted(amount=1)], expected_version=0)
    async with store.transaction() as tx:
        tx.append("held", [], expected_version=1)
        await tx.flush()
        # Another writer's append to the stream waits for this transaction: what was checked
        # stays true until commit.
        other = asyncio.create_task(store.append("held", [Counted(amount=2)], expected_version=1))
        await asyncio.sleep(0.3)
        assert not other.done()
    assert (await other).version == 2


async def test_a_version_check_cannot_share_a_flush_with_fill_in(store: EventStore) -> None:
    async def fill_and_check() -> None:
        async with store.transaction() as tx:
            tx.fill_in(Fill("@value:x", "'1'", ()))
            tx.append("fill-and-check", [Counted(amount=1)], expected_version=0)
            tx.append("checked", [], expected_version=1)

    with pytest.raises(ValueError, match="version check"):
        await fill_and_check()
    assert await store.load("fill-and-check") == []


async def test_rolled_back_transaction_leaves_neither_events_nor_outbox_rows(
    store: EventStore, engine: AsyncEngine
) -> None:
    before_events, before_outbox = await count(engine, "events"), await count(engine, "outbox")

    async def fail_after_append() -> None:
        async with store.transaction() as tx:
            tx.append("rolled-back", [Counted(amount=5)], expected_version=0)
            written = await tx.flush()
            assert written[0].version == 1
            raise RuntimeError("failure after the append, before commit")

    with pytest.raises(RuntimeError, match="after the append"):
        await fail_after_append()
    assert await count(engine, "events") == before_events
    assert await count(engine, "outbox") == before_outbox
    # The positions it took were given back: the next append continues without a gap.
    last = await store.last_position()
    result = await store.append("after-rollback", [Counted(amount=1)], expected_version=0)
    assert result.positions == (last + 1,)


async def test_positions_are_gap_free_under_concurrent_appends(store: EventStore) -> None:
    start = await store.last_position()

    async def writer(n: int) -> None:
        for i in range(15):
            await store.append(
                f"gapless-{n}-{i}", [Counted(amount=i)] * (1 + i % 3), expected_version=0
            )

    await asyncio.gather(*(writer(n) for n in range(8)))
    # The writers used several pooled connections; the appends' cursors went back with them but
    # for the one connection the store keeps for itself (no cursor keeps a connection alive).
    assert len(store._cursors) <= 1
    positions = [e.position async for e in store.iterate(after_position=start, page_size=50)]
    assert positions == list(range(start + 1, start + 1 + len(positions)))
    assert len(positions) == 8 * sum(1 + i % 3 for i in range(15))


async def test_load_stops_at_a_version_or_a_point_in_time(store: EventStore) -> None:
    clock = store.clock
    assert isinstance(clock, FixedClock)
    for day in range(3):
        clock.set(T0 + timedelta(days=day))
        await store.append("timeline", [Counted(amount=day)], expected_version=day)
    clock.set(T0)
    assert [e.version for e in await store.load("timeline", up_to_version=2)] == [1, 2]
    as_of = await store.load("timeline", as_of=T0 + timedelta(days=1, hours=1))
    assert [e.event() for e in as_of] == [Counted(amount=0), Counted(amount=1)]
    assert [e.version for e in await store.load("timeline", after_version=2)] == [3]


async def test_expected_version_none_appends_after_whatever_is_there(store: EventStore) -> None:
    await store.append("any", [Counted(amount=1)], expected_version=None)
    result = await store.append("any", [Counted(amount=2)], expected_version=None)
    assert result.version == 2


async def test_stored_chain_verifies_and_each_tampering_names_the_first_bad_event(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append("chain", [Counted(amount=n) for n in range(1, 6)], expected_version=0)
    assert verify(await store.load("chain")) == []

    async def tamper(sql: str) -> None:
        async with engine.begin() as connection:
            await connection.execute(text(sql))

    # Altered data: the chain breaks at that very event.
    await tamper(
        "UPDATE events SET data = jsonb_set(data, '{amount}', '99')"
        " WHERE stream_id = 'chain' AND version = 3"
    )
    breaks = verify(await store.load("chain"))
    assert [(b.stream_id, b.version) for b in breaks] == [("chain", 3)]
    assert "altered" in breaks[0].reason
    await tamper(
        "UPDATE events SET data = jsonb_set(data, '{amount}', '3')"
        " WHERE stream_id = 'chain' AND version = 3"
    )
    assert verify(await store.load("chain")) == []

    # Swapped: versions 2 and 4 exchange contents (as a forger renumbering them would).
    events = await store.load("chain")
    swapped = [events[0], events[3], events[2], events[1], events[4]]
    breaks = verify(swapped)
    assert breaks[0].version == events[3].version

    # Removed: version 2 deleted.
    await tamper("DELETE FROM events WHERE stream_id = 'chain' AND version = 2")
    breaks = verify(await store.load("chain"))
    assert [(b.version, b.reason) for b in breaks] == [(3, "version 3 follows version 1")]


async def test_a_new_streams_chain_made_by_the_writer_is_the_one_the_database_would_make(
    store: EventStore,
) -> None:
    # Expected version 0: the store chains the events itself and sends the hashes; expected None:
    # it sends digests and the database chains them. Both must give `chain`'s hashes.
    events = [Counted(amount=n, unit_id="0551198" if n % 2 else None) for n in range(1, 5)]
    context = AppendContext(actor=Actor("teacher-1", "entry"), traceparent=None)
    await store.append("by-writer", events, expected_version=0, context=context)
    await store.append("by-database", events, expected_version=None, context=context)
    # ... and a later append to the writer-chained stream is chained by the database from its head.
    await store.append("by-writer", [Counted(amount=9)], expected_version=4)
    for stream, length in (("by-writer", 5), ("by-database", 4)):
        loaded = await store.load(stream)
        assert len(loaded) == length
        previous = GENESIS
        for event in loaded:
            assert event.prevhash == previous
            assert event.hash == chain(previous, event.hashed_attributes(), event.version)
            previous = event.hash
        assert verify(loaded) == []


async def test_the_database_takes_a_given_hash_only_for_a_stream_without_events(
    store: EventStore, engine: AsyncEngine
) -> None:
    await store.append("has-events", [Counted(amount=1)], expected_version=0)
    head = (await store.load("has-events"))[-1]
    digest = "ab" * 32
    forged = "f" * 64

    async def append_raw(stream: str, expected: int) -> None:
        event = {
            "event_id": "0b6f3c52-2d2b-4f7e-9a55-6f1d2c3b4a59",
            "type": "Counted",
            "schema_version": 1,
            "data": {"amount": 2, "unit_id": None},
            "unit_id": None,
            "digest": digest,
            "hash": forged,
        }
        streams = [
            {"stream_id": stream, "expected_version": expected, "metadata": {}, "events": [event]}
        ]
        async with engine.begin() as connection:
            await connection.execute(
                text("SELECT * FROM ictc_append(CAST(:streams AS jsonb), 1, :at)"),
                {"streams": json.dumps(streams), "at": T0},
            )

    # A stream with events: the given hash is ignored, the digest is chained to the head.
    await append_raw("has-events", 1)
    second = (await store.load("has-events"))[-1]
    assert second.prevhash == head.hash
    assert second.hash == chain_digest(head.hash, bytes.fromhex(digest), 2)
    # A new stream: the writer's hash is taken as given, so a wrong one is stored as it came, and
    # `verify` names the event (the chain check, not the database, is what catches a bad writer).
    await append_raw("no-events", 0)
    stored = await store.load("no-events")
    assert stored[0].hash == forged
    assert [(b.version, "altered" in b.reason) for b in verify(stored)] == [(1, True)]


async def test_snapshots_bound_the_replay_and_give_the_same_state(
    store: EventStore, engine: AsyncEngine
) -> None:
    def fold(state: Mapping[str, Any] | None, event: RecordedEvent) -> Mapping[str, Any]:
        payload = event.event()
        assert isinstance(payload, Counted)
        total = (state or {"total": 0})["total"]
        return {"total": total + payload.amount}

    await store.append("long", [Counted(amount=n) for n in range(1, 251)], expected_version=0)
    version, state = await store.load_folded("long", kind="total-v1", fold=fold, every=100)
    assert (version, state) == (250, {"total": sum(range(1, 251))})
    snapshot = await store.latest_snapshot("long", kind="total-v1")
    assert snapshot is not None
    assert snapshot.version == 250

    await store.append("long", [Counted(amount=1000)], expected_version=250)
    seen: list[int] = []

    def counting_fold(state: Mapping[str, Any] | None, event: RecordedEvent) -> Mapping[str, Any]:
        seen.append(event.version)
        return fold(state, event)

    version, state = await store.load_folded("long", kind="total-v1", fold=counting_fold)
    assert (version, state) == (251, {"total": sum(range(1, 251)) + 1000})
    assert seen == [251]  # only the tail after the snapshot was replayed
    assert await store.latest_snapshot("long", kind="total-v2") is None


async def test_an_append_keeps_the_loop_polling_while_it_waits_for_its_commit(
    store: EventStore,
) -> None:
    before = store.busy_poll.turns
    await store.append("poll-1", [Counted(amount=1)], expected_version=0)
    await store.busy_poll.close()  # ends the lingering poller, which counts its turns
    assert store.busy_poll.turns > before


async def test_a_services_store_takes_its_polling_budget_from_the_settings(
    engine: AsyncEngine, fresh_database: DatabaseFactory
) -> None:
    url = fresh_database("eventstore")
    polling = await EventStore.from_settings(
        DatabaseSettings(database_url=url, database_pool_size=2, database_busy_poll_ms=5),
        source="/tests",
        clock=FixedClock(T0),
    )
    quiet = await EventStore.from_settings(
        DatabaseSettings(database_url=url, database_busy_poll_ms=0),
        source="/tests",
        clock=FixedClock(T0),
        max_size=3,  # a caller's own pool size wins over the settings'
        wait=True,
    )
    try:
        assert polling.busy_poll.budget == 0.005
        assert polling.pool.max_size == 2
        assert quiet.pool.max_size == 3
        await quiet.append("poll-2", [Counted(amount=1)], expected_version=0)
        assert not quiet.busy_poll.polling()
        assert quiet.busy_poll.turns == 0
        assert (await polling.load("poll-2"))[0].event() == Counted(amount=1)
    finally:
        await polling.close()
        await quiet.close()
