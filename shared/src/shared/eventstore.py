"""The event store: append with an expected version, load a stream, read the log in position order.

Why this exists: every service keeps its facts here, in its own PostgreSQL database (ARCHITECTURE.md
§4). One append is one transaction that writes the events, their outbox rows and, when the request
carried one, its idempotency record, so a 2xx answer means the fact is durable and will reach Kafka.

Usage::

    store = await EventStore.from_settings(settings, source="/ictcadastre/equipment", clock=clock)
    history = await store.load(item_id)
    result = await store.append(item_id, [ItemMoved(...)], expected_version=len(history),
                                context=AppendContext(actor=Actor("u1", "manage")))
    async with store.transaction() as tx:          # several streams, atomically (a transfer)
        tx.append(source_unit, [...], expected_version=3)   # queued, written at the block's end
        tx.append(target_unit, [...], expected_version=9)

Notes:
- `expected_version=0` means "the stream must not exist yet"; `None` means "whatever it is now" (the
  unique key still makes a concurrent append of the same version fail rather than fork the stream).
  Inside `transaction()`, an append without events is a version check that holds until commit.
- Positions are gap-free and follow commit order: they are taken from the single row of
  `event_positions`, whose lock is held until commit, so a later position never commits first. The
  whole write (positions, version check, hash chain, events, outbox) is one call of the server-side
  function `ictc_append` (shared.schema), so a single-stream append is one round trip in autocommit.
  The cost is that appends of one service serialise on that row for the length of their commit,
  which `make bench` shows is cheap next to the round trips saved.
- While an append waits for its commit, the store keeps the event loop polling rather than asleep
  (`shared.busypoll`, bounded by `BusyPoll.budget`; `DATABASE_BUSY_POLL_MS` for a service): on
  virtual machines waking an idle loop costs about 50 µs, some 15% of a one-event append.
- Each event's hash chains to the previous event of its stream (`shared.hashchain`).
- `StoreTransaction.fill_in` lets the database put a value into the events inside the append's
  own statement (`ictc_append_filled`): a per-unit counter is then locked for that statement and
  its commit, not across a round trip to the caller.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from time import monotonic
from typing import Any
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.busypoll import BusyPoll
from shared.clock import Clock
from shared.events.base import Event
from shared.events.envelope import Actor, RecordedEvent, format_time
from shared.hashchain import GENESIS, CanonicalEnvelope, canonical_text, chain_step
from shared.schema import VERSION_CONFLICT_SQLSTATE
from shared.settings import DatabaseSettings

_APPEND = (
    "SELECT out_version, out_position, out_prevhash, out_hash"
    " FROM ictc_append(%s::jsonb, %s::integer, %s::timestamptz)"
)

# `ictc_append_filled` with the caller's value expression in place of {value}.
_APPEND_FILLED = (
    "SELECT out_version, out_position, out_prevhash, out_hash, out_value"
    " FROM ictc_append_filled(%s::text, %s::integer, %s::timestamptz, %s::text, ({value}))"
)

_SELECT_EVENTS = (
    "SELECT position, event_id, stream_id, version, type, schema_version, data, metadata, unit_id,"
    " recorded_at, prevhash, hash FROM events"
)


class VersionConflictError(Exception):
    """The stream moved on since the caller read it: reload, decide again, retry."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class AppendContext:
    """Who asks and why: recorded in every event's metadata."""

    actor: Actor | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    traceparent: str | None = None
    unit_id: str | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append produced: the stream's new version and the events' global positions.

    `events` (the recorded events, with their envelopes) are built on first use: most callers
    need only the version and positions, and building them costs as much as spelling the request.
    """

    stream_id: str
    version: int
    positions: tuple[int, ...]
    recorded: tuple[RecordedEvent, ...] | Callable[[], tuple[RecordedEvent, ...]] = field(
        default=(), repr=False, compare=False
    )

    @property
    def events(self) -> tuple[RecordedEvent, ...]:
        """Return the recorded events of this append, in version order."""
        recorded = self.recorded
        if callable(recorded):
            recorded = recorded()
            object.__setattr__(self, "recorded", recorded)
        return recorded

    @property
    def last_position(self) -> int:
        """Return the position of the last event written (0 when nothing was written)."""
        return self.positions[-1] if self.positions else 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stream's state folded up to `version`."""

    version: int
    state: Mapping[str, Any]


SNAPSHOT_EVERY = 100

# Every so often the spare goes back to the pool anyway, so that the pool's health and lifetime
# rules still apply to it; the next connection the pool gives out becomes the spare.
_SPARE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Fill:
    """A value the database gives inside the next flush's append, where `placeholder` stands.

    `value_sql` is an SQL expression (with %s parameters `params`) of text, evaluated in the
    append's own statement: a counter's row it locks is then held for that statement and its
    commit only. The value must need no JSON escaping.
    """

    placeholder: str
    value_sql: str
    params: tuple[Any, ...] = ()


@dataclass(slots=True)
class _Pending:
    stream_id: str
    expected_version: int | None
    events: list[Event]
    context: AppendContext


_sha256 = hashlib.sha256
_GENESIS = bytes.fromhex(GENESIS)  # the prevhash of a stream's first event
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_string: Callable[[str], str] = json.encoder.encode_basestring


# uuid4 by hand, as text: one urandom call per append instead of one per event, spelled the way
# str(UUID) spells it, with the version (4) and variant (RFC 4122: 10xx) nibbles set the way
# uuid.uuid4 sets them. The append needs the text; a UUID object is made only for recorded events.
_VARIANT_NIBBLE = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def _uuid4_texts(count: int) -> list[str]:
    digits = os.urandom(16 * count).hex()
    variant = _VARIANT_NIBBLE
    return [
        f"{digits[i : i + 8]}-{digits[i + 8 : i + 12]}-4{digits[i + 13 : i + 16]}-"
        f"{variant[digits[i + 16]]}{digits[i + 17 : i + 20]}-{digits[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


class StoreTransaction:
    """Appends collected in one database transaction; written when the block exits without error."""

    def __init__(self, store: EventStore, connection: psycopg.AsyncConnection[Any]) -> None:
        self._store = store
        self.connection = connection
        self._pending: list[_Pending] = []
        self.results: list[AppendResult] = []
        self._commit_on_flush = False
        self._fill: Fill | None = None
        self.committed = False
        self.begun = True  # False in `transaction(defer_begin=True)` until `begin_prefix()`

    def begin_prefix(self) -> str:
        """Return "BEGIN; " if the transaction is not begun yet (and count it as begun), else "".

        For the first statement of a `transaction(defer_begin=True)`, sent as one simple query.
        """
        if self.begun:
            return ""
        self.begun = True
        return "BEGIN; "

    def commit_with_next_flush(self) -> None:
        """Send COMMIT together with the next flush's append (one round trip, not two).

        Only for a caller whose next flush is the transaction's last statement: the locks taken
        before (and the log's position row the append takes) are then held for one round trip.
        After it, the transaction is over; `transaction()` does not commit again.
        """
        self._commit_on_flush = True

    def fill_in(self, fill: Fill) -> None:
        """Let the database put a value where `fill.placeholder` stands, at the next flush.

        For a value that must be in the events but whose source should stay locked as briefly as
        possible (a per-unit counter). The flush's events are hashed by the database, after the
        value is in place; `AppendResult.events` carry the value. A flush whose events do not
        hold the placeholder does not evaluate `fill.value_sql`.
        """
        self._fill = fill

    def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        *,
        expected_version: int | None,
        context: AppendContext | None = None,
    ) -> None:
        """Queue `events` for `stream_id`; they are written together with the others at flush.

        Without events it is a version check: the flush fails with `VersionConflictError` unless
        the stream is at `expected_version`, and (checked under the log's position lock, which
        the transaction then holds) it stays there until commit. Not with `fill_in`'s flush.
        """
        self._pending.append(
            _Pending(str(stream_id), expected_version, list(events), context or AppendContext())
        )

    async def flush(self) -> list[AppendResult]:
        """Write every queued append in one call; raise `VersionConflictError` on a conflict."""
        pending, self._pending = self._pending, []
        pending = [p for p in pending if p.events or p.expected_version is not None]
        if not pending:
            return []
        commit = self._commit_on_flush
        if self.committed:
            raise RuntimeError("the transaction was committed with an earlier flush")
        fill, self._fill = self._fill, None
        if fill is not None and not all(item.events for item in pending):
            # ictc_append_filled rebuilds each stream's events with jsonb_agg, which spells an
            # empty list as null: a version check goes in a flush of its own.
            raise ValueError("a version check (an append without events) in fill_in's flush")
        results = await self._store._write(self.connection, pending, commit=commit, fill=fill)
        self.committed = commit
        self.results.extend(results)
        return results


class EventStore:
    """Append-only, hash-chained event log of one service, with its transactional outbox.

    It talks to PostgreSQL through its own small psycopg pool of autocommit connections with
    prepared statements: the append path is the hottest write of the system, and a SQLAlchemy
    checkout costs more round trips than the append itself.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        source: str,
        clock: Clock,
        busy_poll: BusyPoll | None = None,
    ) -> None:
        self.pool = pool
        self.source = source
        self.clock = clock
        # The loop polls while an append waits for its commit (see shared.busypoll).
        self.busy_poll = busy_poll if busy_poll is not None else BusyPoll()
        # One idle connection kept out of the pool between calls: a sequential caller (the common
        # case) skips the pool's checkout and return, which cost about as much as the Python side
        # of an append. Only when the pool has another connection for everyone else.
        self._spare: psycopg.AsyncConnection[Any] | None = None
        self._spare_since = monotonic()
        self._cursors: dict[psycopg.AsyncConnection[Any], psycopg.AsyncCursor[Any]] = {}

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        source: str,
        clock: Clock,
        max_size: int = 10,
        busy_poll: BusyPoll | None = None,
        wait: bool = True,
    ) -> EventStore:
        """Open a store on `database_url` (SQLAlchemy or libpq spelling) with its own pool.

        With `wait` it waits (30 s at most) for the pool's first connection.
        """
        pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=False,
        )
        await (pool.open(wait=True, timeout=30) if wait else pool.open(wait=False))
        return cls(pool, source=source, clock=clock, busy_poll=busy_poll)

    @classmethod
    async def from_settings(
        cls,
        settings: DatabaseSettings,
        *,
        source: str,
        clock: Clock,
        max_size: int | None = None,
        wait: bool = False,
    ) -> EventStore:
        """Open a service's store as its settings say (pool size unless `max_size`, busy poll).

        By default it does not wait for the database (an API's readiness reports it if down).
        """
        return await cls.open(
            settings.database_url,
            source=source,
            clock=clock,
            max_size=settings.database_pool_size if max_size is None else max_size,
            busy_poll=BusyPoll(budget=settings.database_busy_poll_ms / 1000),
            wait=wait,
        )

    async def close(self) -> None:
        """Close the pool."""
        await self.busy_poll.close()
        spare, self._spare = self._spare, None
        self._cursors.clear()
        if spare is not None:
            await self.pool.putconn(spare)
        await self.pool.close()

    def _connection(self) -> _Checkout:
        return _Checkout(self)

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        spare = self._spare
        if spare is not None:
            self._spare = None
            return spare
        return await self.pool.getconn()

    async def _release(self, connection: psycopg.AsyncConnection[Any], *, failed: bool) -> None:
        if (
            not failed
            and self._spare is None
            and self.pool.max_size > 1
            and connection.pgconn.transaction_status == TransactionStatus.IDLE
        ):
            if monotonic() - self._spare_since < _SPARE_SECONDS:
                self._spare = connection
                return
            self._spare_since = monotonic()
        # The pool checks it (and replaces a broken one) and recycles old connections.
        self._cursors.pop(connection, None)
        await self.pool.putconn(connection)

    def _cursor(self, connection: psycopg.AsyncConnection[Any]) -> psycopg.AsyncCursor[Any]:
        # One cursor per checked-out connection for the appends, reused while the store holds the
        # connection (the spare, mostly): making one per call cost a sixth of the client's work
        # for a one-event append. Dropped when the connection goes back to the pool.
        cursor = self._cursors.get(connection)
        if cursor is None:
            cursor = self._cursors[connection] = connection.cursor()
        return cursor

    @asynccontextmanager
    async def transaction(self, *, defer_begin: bool = False) -> AsyncIterator[StoreTransaction]:
        """Open a transaction; queued appends are flushed before commit, atomically.

        With `defer_begin` the caller's first statement must start with `tx.begin_prefix()` (BEGIN
        in the same round trip); one that sends none runs its flush as a single statement.
        """
        # BEGIN/COMMIT by hand, not psycopg's `transaction()`: the last append may carry the
        # COMMIT in its own round trip (`StoreTransaction.commit_with_next_flush`). Savepoints
        # (`connection.transaction()` inside) work as before: the connection is in a transaction.
        async with self._connection() as connection:
            tx = StoreTransaction(self, connection)
            if defer_begin:
                tx.begun = False
            else:
                await connection.execute("BEGIN")
            try:
                yield tx
                await tx.flush()
                if tx.begun and not tx.committed:
                    await connection.execute("COMMIT")
            except BaseException:
                status = connection.pgconn.transaction_status
                if status in _IN_TRANSACTION and not connection.closed:
                    with suppress(psycopg.Error):  # a broken connection: the pool discards it
                        await connection.execute("ROLLBACK")
                raise

    async def append(
        self,
        stream_id: str,
        events: Sequence[Event],
        *,
        expected_version: int | None,
        context: AppendContext | None = None,
    ) -> AppendResult:
        """Append `events` to one stream and return the new version (one round trip)."""
        if not events:
            current = await self.stream_version(stream_id)
            if expected_version is not None and current != expected_version:
                raise VersionConflictError(stream_id, expected_version, current)
            return AppendResult(str(stream_id), current, ())
        pending = [
            _Pending(str(stream_id), expected_version, list(events), context or AppendContext())
        ]
        # A single statement in autocommit is its own transaction: no BEGIN/COMMIT round trips.
        async with self._connection() as connection:
            results = await self._write(connection, pending)
        return results[0]

    async def _write(
        self,
        connection: psycopg.AsyncConnection[Any],
        pending: list[_Pending],
        *,
        commit: bool = False,
        fill: Fill | None = None,
    ) -> list[AppendResult]:
        # The hot path: each event is spelled once as canonical JSON (hashed here, the database
        # chains the digests, or takes a new stream's chain made here) and the request is
        # assembled from JSON fragments, not re-serialised. With a `fill` whose placeholder the
        # events hold, the database hashes their texts.
        placeholder = fill.placeholder if fill is not None else None
        holders: set[str] = set()  # the events whose data or unit holds the placeholder
        now = self.clock.now()
        now_text = format_time(now)
        source = self.source
        encode_string = _json_string
        streams: list[str] = []
        built: list[list[tuple[str, Event, Mapping[str, Any], str | None]]] = []
        total = 0
        for item in pending:
            context = item.context
            actor = context.actor
            correlation = str(context.correlation_id) if context.correlation_id else None
            causation = str(context.causation_id) if context.causation_id else None
            envelope = CanonicalEnvelope(
                source=source,
                stream_id=item.stream_id,
                time_text=now_text,
                actor_id=actor.user_id if actor else None,
                actor_role=actor.role if actor else None,
                correlation_id=correlation,
                causation_id=causation,
            )
            metadata = {
                "source": source,
                "actor_id": actor.user_id if actor else None,
                "actor_role": actor.role if actor else None,
                "correlation_id": correlation,
                "causation_id": causation,
                "traceparent": context.traceparent,
            }
            rows: list[str] = []
            batch: list[tuple[str, Event, Mapping[str, Any], str | None]] = []
            context_unit = context.unit_id
            # A new stream (expected at version 0) starts from the genesis hash: its chain is
            # computed here and the database takes it (if the stream is indeed new: otherwise the
            # version check refuses the append) instead of hashing each event under its lock.
            chained = _GENESIS if item.expected_version == 0 and placeholder is None else None
            for version, (event, id_text) in enumerate(
                zip(item.events, _uuid4_texts(len(item.events)), strict=True), 1
            ):
                data = event.payload()
                data_text = canonical_text(data)
                unit_value = getattr(event, "unit_id", None)
                unit_id = str(unit_value) if unit_value is not None else context_unit
                type_text = encode_string(event.type)
                unit_text = "null" if unit_id is None else encode_string(unit_id)
                event_text = envelope.event_text(
                    event_id=id_text,
                    type_=event.type,
                    schema_version=event.schema_version,
                    unit_id=unit_id,
                    data_text=data_text,
                )
                if chained is not None:
                    digest = _sha256(event_text.encode()).digest()
                    chained = chain_step(chained, digest, version)
                    hashed = f'"hash":"{chained.hex()}"'
                elif placeholder is not None and placeholder in event_text:
                    holders.add(id_text)
                    hashed = f'"text":{encode_string(event_text)}'
                else:
                    hashed = f'"digest":"{_sha256(event_text.encode()).hexdigest()}"'
                rows.append(
                    f'{{"event_id":"{id_text}","type":{type_text},'
                    f'"schema_version":{int(event.schema_version)},"data":{data_text},'
                    f'"unit_id":{unit_text},{hashed}}}'
                )
                batch.append((id_text, event, data, unit_id))
            expected = "null" if item.expected_version is None else str(int(item.expected_version))
            streams.append(
                f'{{"stream_id":{encode_string(item.stream_id)},"expected_version":{expected},'
                f'"metadata":{_compact({k: v for k, v in metadata.items() if v is not None})},'
                f'"events":[{",".join(rows)}]}}'
            )
            built.append(batch)
            total += len(batch)
        params: tuple[Any, ...] = (f"[{','.join(streams)}]", total, now)
        if holders:
            assert fill is not None  # noqa: S101  (holders only with a fill)
            written = await _send(
                connection,
                self._cursor(connection),
                _APPEND_FILLED.format(value=fill.value_sql),
                (*params, fill.placeholder, *fill.params),
                commit=commit,
                pending=pending,
                busy_poll=self.busy_poll,
            )
            value = str(written[0][4])
            built = [
                [
                    (event_id, event, _put_value(payload, fill.placeholder, value),
                     _put_value(unit_id, fill.placeholder, value))
                    if event_id in holders
                    else (event_id, event, payload, unit_id)
                    for event_id, event, payload, unit_id in batch
                ]
                for batch in built
            ]  # fmt: skip
        else:
            cursor = self._cursor(connection)
            written = await _send(
                connection,
                cursor,
                _APPEND,
                params,
                commit=commit,
                pending=pending,
                busy_poll=self.busy_poll,
            )
        return self._stamp(pending, built, written, now)

    def _stamp(
        self,
        pending: list[_Pending],
        built: list[list[tuple[str, Event, Mapping[str, Any], str | None]]],
        written: list[Any],
        now: datetime,
    ) -> list[AppendResult]:
        # The written rows (one per event, in order): each stream's share gives its version and
        # positions now, and its recorded events when someone asks for them.
        results: list[AppendResult] = []
        index = 0
        for item, batch in zip(pending, built, strict=True):
            rows = written[index : index + len(batch)]
            index += len(batch)
            results.append(
                AppendResult(
                    item.stream_id,
                    # A version check writes no row: the stream is where it was expected
                    # (an append without events and without an expected version is not sent).
                    rows[-1][0] if rows else item.expected_version or 0,
                    tuple(row[1] for row in rows),
                    partial(_recorded, self.source, item, batch, rows, now),
                )
            )
        return results

    async def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        async with self._connection() as connection:
            cursor = connection.cursor(row_factory=namedtuple_row)
            await cursor.execute(sql, params, prepare=True)
            return await cursor.fetchall()

    async def stream_version(self, stream_id: str) -> int:
        """Return the stream's current version (0 if it has no event)."""
        rows = await self._fetch(
            "SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = %(s)s",
            {"s": str(stream_id)},
        )
        return int(rows[0].v)

    async def load(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]:
        """Return a stream's events in version order, optionally bounded by version or time."""
        clauses = ["stream_id = %(stream_id)s", "version > %(after)s"]
        params: dict[str, Any] = {"stream_id": str(stream_id), "after": after_version}
        if up_to_version is not None:
            clauses.append("version <= %(up_to)s")
            params["up_to"] = up_to_version
        if as_of is not None:
            clauses.append("recorded_at <= %(as_of)s")
            params["as_of"] = as_of
        sql = f"{_SELECT_EVENTS} WHERE {' AND '.join(clauses)} ORDER BY version"
        return [self._from_row(row) for row in await self._fetch(sql, params)]

    async def read_all(
        self, *, after_position: int = 0, limit: int = 1000, unit_id: str | None = None
    ) -> list[RecordedEvent]:
        """Return up to `limit` events after `after_position`, in position order (one page)."""
        where = "position > %(after)s"
        params: dict[str, Any] = {"after": after_position, "limit": limit}
        if unit_id is not None:
            where += " AND unit_id = %(unit_id)s"
            params["unit_id"] = unit_id
        sql = f"{_SELECT_EVENTS} WHERE {where} ORDER BY position LIMIT %(limit)s"
        return [self._from_row(row) for row in await self._fetch(sql, params)]

    async def iterate(
        self, *, after_position: int = 0, page_size: int = 1000, unit_id: str | None = None
    ) -> AsyncIterator[RecordedEvent]:
        """Yield every event after `after_position` page by page: memory stays flat."""
        position = after_position
        while True:
            page = await self.read_all(after_position=position, limit=page_size, unit_id=unit_id)
            for event in page:
                yield event
            if len(page) < page_size:
                return
            position = page[-1].position

    async def save_snapshot(
        self, stream_id: str, *, version: int, kind: str, state: Mapping[str, Any]
    ) -> None:
        """Keep `state` as the folded stream up to `version` (a newer snapshot replaces it)."""
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO snapshots (stream_id, version, kind, state, taken_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream_id) DO UPDATE"
                " SET version = EXCLUDED.version, kind = EXCLUDED.kind, state = EXCLUDED.state,"
                " taken_at = EXCLUDED.taken_at WHERE snapshots.version < EXCLUDED.version",
                (str(stream_id), version, kind, Jsonb(dict(state)), self.clock.now()),
            )

    async def latest_snapshot(self, stream_id: str, *, kind: str) -> Snapshot | None:
        """Return the stream's snapshot of `kind` (None if there is none, or of another kind)."""
        rows = await self._fetch(
            "SELECT version, state FROM snapshots WHERE stream_id = %(s)s AND kind = %(k)s",
            {"s": str(stream_id), "k": kind},
        )
        return Snapshot(rows[0].version, rows[0].state) if rows else None

    async def load_folded(
        self,
        stream_id: str,
        *,
        kind: str,
        fold: Callable[[Mapping[str, Any] | None, RecordedEvent], Mapping[str, Any]],
        every: int = SNAPSHOT_EVERY,
    ) -> tuple[int, Mapping[str, Any] | None]:
        """Fold a stream from its latest snapshot; take a new one once `every` events follow it.

        `fold(state, event)` must be pure and its state JSON-ready; `kind` names the fold (and its
        version: bump it when the fold changes, and old snapshots are ignored). Returns the stream
        version and the folded state.
        """
        snapshot = await self.latest_snapshot(stream_id, kind=kind)
        version, state = (snapshot.version, snapshot.state) if snapshot else (0, None)
        tail = await self.load(stream_id, after_version=version)
        for event in tail:
            state = fold(state, event)
            version = event.version
        if len(tail) >= every and state is not None:
            await self.save_snapshot(stream_id, version=version, kind=kind, state=state)
        return version, state

    async def last_position(self) -> int:
        """Return the highest committed position of this store."""
        rows = await self._fetch("SELECT last_position FROM event_positions", {})
        return int(rows[0].last_position) if rows else 0

    def _from_row(self, row: Any) -> RecordedEvent:
        return record_from_row(self.source, row)


class _Checkout:
    """`async with store._connection()`: the spare connection if idle, else one from the pool."""

    __slots__ = ("_connection", "_store")

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        self._connection = await self._store._acquire()
        return self._connection

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._store._release(connection, failed=exc_type is not None)


_IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


def libpq_url(database_url: str) -> str:
    """Return a libpq connection string for a SQLAlchemy URL (`postgresql+psycopg://…`)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg_async://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


def record_from_row(source: str, row: Any) -> RecordedEvent:
    """Build a `RecordedEvent` from an `events` row selected with `_SELECT_EVENTS`' columns."""
    meta: Mapping[str, Any] = row.metadata or {}
    actor_id = meta.get("actor_id")
    return RecordedEvent(
        event_id=row.event_id,
        source=meta.get("source", source),
        stream_id=row.stream_id,
        version=row.version,
        position=row.position,
        type=row.type,
        schema_version=row.schema_version,
        data=row.data,
        recorded_at=row.recorded_at,
        unit_id=row.unit_id,
        actor=Actor(actor_id, meta.get("actor_role")) if actor_id else None,
        correlation_id=UUID(meta["correlation_id"]) if meta.get("correlation_id") else None,
        causation_id=UUID(meta["causation_id"]) if meta.get("causation_id") else None,
        traceparent=meta.get("traceparent"),
        prevhash=row.prevhash,
        hash=row.hash,
    )


async def _send(
    connection: psycopg.AsyncConnection[Any],
    cursor: psycopg.AsyncCursor[Any],
    statement: str,
    params: tuple[Any, ...],
    *,
    commit: bool,
    pending: list[_Pending],
    busy_poll: BusyPoll,
) -> list[Any]:
    try:
        # The loop polls while the statement waits for its commit's flush (shared.busypoll).
        async with busy_poll:
            if commit:
                # The append and COMMIT in one simple query: one round trip (a psycopg pipeline
                # costs more CPU than it saves). On an error the server skips the COMMIT.
                client = psycopg.AsyncClientCursor(connection)
                await client.execute(statement + "; COMMIT", params)
                return await client.fetchall()
            await cursor.execute(statement, params, prepare=True)
            return await cursor.fetchall()
    except psycopg.Error as exc:
        raise _translate(exc, pending) from exc


def _recorded(
    source: str,
    item: _Pending,
    batch: list[tuple[str, Event, Mapping[str, Any], str | None]],
    rows: list[Any],
    now: datetime,
) -> tuple[RecordedEvent, ...]:
    context = item.context
    return tuple(
        RecordedEvent(
            event_id=UUID(event_id),
            source=source,
            stream_id=item.stream_id,
            version=row[0],
            position=row[1],
            type=event.type,
            schema_version=event.schema_version,
            data=payload,
            recorded_at=now,
            unit_id=unit_id,
            actor=context.actor,
            correlation_id=context.correlation_id,
            causation_id=context.causation_id,
            traceparent=context.traceparent,
            prevhash=row[2],
            hash=row[3],
        )
        for (event_id, event, payload, unit_id), row in zip(batch, rows, strict=True)
    )


def _put_value(data: Any, placeholder: str, value: str) -> Any:
    """Return `data` with `value` wherever `placeholder` stands in its strings."""
    if isinstance(data, str):
        return data.replace(placeholder, value) if placeholder in data else data
    if isinstance(data, Mapping):
        return {key: _put_value(item, placeholder, value) for key, item in data.items()}
    if isinstance(data, list):
        return [_put_value(item, placeholder, value) for item in data]
    return data


def _translate(exc: psycopg.Error, pending: list[_Pending]) -> Exception:
    diag = exc.diag
    if exc.sqlstate == VERSION_CONFLICT_SQLSTATE:
        # The function names the conflicting entry by its index (a stream may come twice).
        hint = diag.message_hint or ""
        item = pending[int(hint)] if hint.isdigit() and int(hint) < len(pending) else pending[0]
        actual = int(diag.message_detail) if diag.message_detail else None
        return VersionConflictError(item.stream_id, item.expected_version, actual)
    if exc.sqlstate == "23505" and "uq_events_stream_id_version" in str(exc):
        return VersionConflictError(pending[0].stream_id, pending[0].expected_version, None)
    return exc
