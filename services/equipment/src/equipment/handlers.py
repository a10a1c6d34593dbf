"""Command handlers: load the streams a rule needs, decide with `equipment.domain`, append.

Why this exists: the HTTP API and the bulk importer run the same commands and must get the same
rules and errors. Each handler reads every stream it will write in its own store transaction
(`UnitOfWork`), asks the domain, and appends each stream's events with the version it read as the
expected version, so a concurrent change fails with `VersionConflictError` instead of being lost.

Usage::

    result = await register_item(command, store=store, clock=clock, context=context,
                                 directory=views.UnitDirectory(session))
    # inside an idempotent HTTP command (shared.idempotency.run_idempotent) pass its transaction:
    result = await move_item(command, store=store, clock=clock, context=context,
                             directory=directory, tx=tx, expected_version=if_match)

Notes:
- Reads go through the transaction's own connection (`UnitOfWork.read`): one round trip for all
  the streams a command needs, and no second pool connection per request.
- Every act on a unit's items takes that unit's advisory lock in *shared* mode; certification takes
  it in *exclusive* mode (`lock_units_exclusively`), so the list it hashes cannot change under it
  and no act slips in dated before it.
- Asset numbers come from a per-unit counter row (`equipment_asset_sequences`) incremented in the
  same transaction: the row lock serialises allocations per unit without retries, and a refused
  command rolls its number back, so numbers have no gaps. A registration increments it inside its
  append statement (`asset_number_at_append`: SQL `equipment_next_asset_number` as the value of
  `shared.eventstore.Fill`), so the row is locked for that statement and its COMMIT only, not
  across a round trip to the API and back: registrations into one unit queued on it.
- A serial number is unique per manufacturer through its claim stream
  (`serial:<manufacturer key>:<serial>`), appended with the version read: two registrations of the
  same serial racing each other cannot both commit.
- `expected_version` is the client's If-Match on the command's main stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol
from uuid import UUID, uuid4

from psycopg.rows import namedtuple_row

from equipment import domain
from equipment.commands import (
    AcceptTransfer,
    ApproveProduct,
    BundlePart,
    CancelTransfer,
    ChangeItemStatus,
    CorrectItemDetails,
    MergeProduct,
    MoveItem,
    ProposeProduct,
    RegisterItem,
    RejectProduct,
    RejectTransfer,
    TransferItem,
    UnbundlePart,
    WithdrawItem,
)
from equipment.domain import (
    Item,
    KnownUnit,
    Product,
    SerialClaim,
    UnitInventory,
)
from shared.clock import ATHENS, Clock
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.equipment import ItemEvent
from shared.eventstore import (
    AppendContext,
    AppendResult,
    EventStore,
    Fill,
    StoreTransaction,
    VersionConflictError,
    record_from_row,
)
from shared.outbox import advisory_key

MAX_BUNDLE_DEPTH = 4
ITEM_EVENT_TYPES = tuple(sorted(cls.__name__ for cls in ItemEvent.__args__))

# One index probe per stream asked for: `stream_id = ANY(%s)` with hundreds of ids (an import
# batch) is planned as a sequential scan of the whole log once the custom plan estimates that many
# rows, which made every batch slower than the last; the lateral subquery (fenced by OFFSET 0 so it
# is not flattened into a hash join) walks `uq_events_stream_id_version` for each id instead.
_SELECT = (
    "SELECT e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data,"
    " e.metadata, e.unit_id, e.recorded_at, e.prevhash, e.hash"
    " FROM unnest(%s::text[]) AS s(stream_id) CROSS JOIN LATERAL ("
    "SELECT * FROM events WHERE events.stream_id = s.stream_id OFFSET 0) AS e"
    " ORDER BY e.stream_id, e.version"
)
# The streams asked for, and the last `InventoryCertified` of one unit's inventory stream (all an
# act's date check needs of it: the stream itself grows with every transfer and certification).
_SELECT_WITH_CERTIFICATION = (
    "SELECT e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data,"
    " e.metadata, e.unit_id, e.recorded_at, e.prevhash, e.hash"
    " FROM unnest(%s::text[]) AS s(stream_id) CROSS JOIN LATERAL ("
    "SELECT * FROM events WHERE events.stream_id = s.stream_id OFFSET 0) AS e"
    " UNION ALL (SELECT position, event_id, stream_id, version, type, schema_version, data,"
    " metadata, unit_id, recorded_at, prevhash, hash FROM events WHERE stream_id = %s"
    " AND type = 'InventoryCertified' ORDER BY version DESC LIMIT 1)"
    " ORDER BY stream_id, version"
)
# The act's read (`UnitOfWork.act_query`); `equipment.access` calls it as the SQL function
# equipment_act_read (migration equipment_0003), whose body a test keeps equal to it.
ACT_READ_SQL = _SELECT_WITH_CERTIFICATION
_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(k) FROM unnest(%s::bigint[]) AS k"
_LOCK_EXCLUSIVE = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
_ITEM_STREAMS_OF_UNIT = (
    "SELECT DISTINCT stream_id FROM events WHERE unit_id = %s AND type = ANY(%s)"
)
_NEXT_ASSET_NUMBER = (
    "INSERT INTO equipment_asset_sequences AS s (unit_id, last_number) VALUES (%s, 1)"
    " ON CONFLICT (unit_id) DO UPDATE SET last_number = s.last_number + 1"
    " RETURNING last_number"
)

__all__ = [
    "ACT_READ_SQL",
    "UnitDirectory",
    "UnitOfWork",
    "accept_transfer",
    "approve_product",
    "asset_number_at_append",
    "bundle_part",
    "cancel_transfer",
    "change_item_status",
    "correct_item_details",
    "current_items",
    "load_inventory",
    "load_item",
    "load_product",
    "lock_units_exclusively",
    "merge_product",
    "move_item",
    "next_asset_number",
    "propose_product",
    "register_item",
    "registration_streams",
    "reject_product",
    "reject_transfer",
    "transfer_item",
    "unbundle_part",
    "unit_lock_key",
    "withdraw_item",
]


class UnitDirectory(Protocol):
    """What this service knows of units (folded from `units.events`): status, open locations."""

    async def known_unit(self, unit_id: str) -> KnownUnit | None:
        """Return the unit, or None if it is not known here."""
        ...


def unit_lock_key(unit_id: str) -> int:
    """Return the advisory-lock key of a unit's inventory."""
    return advisory_key(f"equipment:inventory:{unit_id}")


class UnitOfWork:
    """The streams one command reads and writes, inside one store transaction.

    `read` remembers each stream's version; `append` writes decided events grouped by stream with
    those versions as expected versions (a stream not read is a programming error).
    """

    def __init__(self, tx: StoreTransaction, source: str) -> None:
        self.tx = tx
        self.source = source
        self.versions: dict[str, int] = {}
        self.history: dict[str, list[RecordedEvent]] = {}
        # Advisory keys held until commit → exclusive? (a key held is not asked for again).
        self.held_locks: dict[int, bool] = {}
        # unit id → its inventory as `read_for_act` read it (the last certification), under lock.
        self._act_reads: dict[str, UnitInventory] = {}

    async def read(self, *stream_ids: str) -> dict[str, list[RecordedEvent]]:
        """Load the streams not read yet (one round trip) and return all asked for."""
        wanted = [s for s in dict.fromkeys(stream_ids) if s not in self.history]
        if wanted:
            cursor = self.tx.connection.cursor(row_factory=namedtuple_row)
            await cursor.execute(_SELECT, (wanted,), prepare=True)
            for stream_id in wanted:
                self.history[stream_id] = []
            rows: list[Any] = await cursor.fetchall()
            for row in rows:
                self.history[row.stream_id].append(record_from_row(self.source, row))
            for stream_id in wanted:
                events = self.history[stream_id]
                self.versions[stream_id] = events[-1].version if events else 0
        return {s: self.history[s] for s in stream_ids}

    async def read_for_act(self, unit_id: str, *stream_ids: str) -> UnitInventory:
        """Load the streams (as `read`) and the unit's last certification, in one round trip.

        Returns the unit's inventory as far as an act's date check needs it: its last
        certification only (pending transfers are not read, and its stream is not marked read, so
        appending to it still needs `inventory`). Call it after `lock_units`: the certification
        read must see every certification committed before the lock was granted.
        """
        known = self._act_reads.get(unit_id)
        if known is not None and all(s in self.history for s in stream_ids):
            return known  # read together with the checks (`act_query`), under the same lock
        wanted = [s for s in dict.fromkeys(stream_ids) if s not in self.history]
        cursor = self.tx.connection.cursor(row_factory=namedtuple_row)
        await cursor.execute(
            _SELECT_WITH_CERTIFICATION, (wanted, domain.inventory_stream(unit_id)), prepare=True
        )
        return await self.absorb_act(unit_id, wanted, await cursor.fetchall())

    def act_query(self, unit_id: str, *stream_ids: str) -> tuple[str, tuple[Any, ...], list[str]]:
        """Return `read_for_act`'s query and values, to send after the checks in one round trip.

        Returns (query, its values, the streams it reads); pass its rows to `absorb_act`.
        """
        wanted = [s for s in dict.fromkeys(stream_ids) if s not in self.history]
        return _SELECT_WITH_CERTIFICATION, (wanted, domain.inventory_stream(unit_id)), wanted

    async def absorb_act(self, unit_id: str, wanted: list[str], rows: list[Any]) -> UnitInventory:
        """Take in the rows of an `act_query`; a later `read_for_act` of them answers from here."""
        inventory_stream = domain.inventory_stream(unit_id)
        for stream_id in wanted:
            self.history[stream_id] = []
        inventory = UnitInventory(unit_id)
        for row in rows:
            recorded = record_from_row(self.source, row)
            if row.stream_id != inventory_stream:
                self.history[row.stream_id].append(recorded)
                continue
            if inventory_stream in wanted:  # read whole as well: its last certification twice
                history = self.history[inventory_stream]
                if history and history[-1].version == recorded.version:
                    continue
                history.append(recorded)
            inventory = domain.evolve_inventory(inventory, recorded.event(), recorded.version)
        for stream_id in wanted:
            events = self.history[stream_id]
            self.versions[stream_id] = events[-1].version if events else 0
        if inventory_stream in self.history and inventory_stream not in wanted:
            return (await self.inventories(unit_id))[unit_id]  # read whole before: fold it
        self._act_reads[unit_id] = inventory
        return inventory

    async def items(self, item_ids: Iterable[UUID]) -> dict[UUID, Item | None]:
        """Return the items (None for an id never registered)."""
        ids = list(dict.fromkeys(item_ids))
        streams = await self.read(*(domain.item_stream(i) for i in ids))
        return {
            item_id: domain.replay_item(
                (r.event(), r.version) for r in streams[domain.item_stream(item_id)]
            )
            for item_id in ids
        }

    async def item(self, item_id: UUID) -> Item | None:
        """Return the item, or None."""
        return (await self.items([item_id]))[item_id]

    async def parts_of(self, item: Item) -> list[Item]:
        """Return the parts of a bundle, and theirs, down to `MAX_BUNDLE_DEPTH` levels."""
        found: list[Item] = []
        level = [item]
        for _ in range(MAX_BUNDLE_DEPTH):
            ids = [part_id for bundle in level for part_id in bundle.parts]
            if not ids:
                break
            loaded = await self.items(ids)
            level = [part for part in loaded.values() if part is not None]
            found += level
        return found

    async def inventories(self, *unit_ids: str) -> dict[str, UnitInventory]:
        """Return the units' inventory states."""
        streams = await self.read(*(domain.inventory_stream(u) for u in unit_ids))
        return {
            unit_id: domain.replay_inventory(
                unit_id, ((r.event(), r.version) for r in streams[domain.inventory_stream(unit_id)])
            )
            for unit_id in unit_ids
        }

    async def inventory(self, unit_id: str) -> UnitInventory:
        """Return a unit's inventory state."""
        return (await self.inventories(unit_id))[unit_id]

    async def product(self, product_id: UUID) -> Product | None:
        """Return the product, or None."""
        stream = domain.product_stream(product_id)
        history = (await self.read(stream))[stream]
        return domain.replay_product((r.event(), r.version) for r in history)

    async def claim(self, key: tuple[str, str]) -> SerialClaim:
        """Return the claim on (manufacturer key, serial number)."""
        stream = domain.serial_stream(*key)
        claim = SerialClaim(key[0], key[1])
        for recorded in (await self.read(stream))[stream]:
            claim = domain.evolve_claim(claim, recorded.event(), recorded.version)
        return claim

    async def lock_units(self, *unit_ids: str, exclusive: bool = False) -> None:
        """Take the units' inventory locks until commit (shared for acts, exclusive to certify)."""
        keys = sorted(
            key
            for key in {unit_lock_key(u) for u in unit_ids}
            if key not in self.held_locks or (exclusive and not self.held_locks[key])
        )
        if not keys:
            return
        await self.tx.connection.execute(_LOCK_EXCLUSIVE if exclusive else _LOCK_SHARED, (keys,))
        for key in keys:
            self.held_locks[key] = exclusive

    async def append(self, events: Sequence[Event], context: AppendContext) -> list[AppendResult]:
        """Append decided events, grouped by stream, each with the version it was read at."""
        grouped = domain.by_stream(events)
        if not grouped:
            return []
        for stream_id, batch in grouped:
            if stream_id not in self.versions:
                raise RuntimeError(f"stream {stream_id} was appended to without being read")
            self.tx.append(
                stream_id, batch, expected_version=self.versions[stream_id], context=context
            )
        results = await self.tx.flush()
        for result in results:
            self.versions[result.stream_id] = result.version
        return results


@asynccontextmanager
async def unit_of_work(
    store: EventStore, tx: StoreTransaction | None, uow: UnitOfWork | None = None
) -> AsyncIterator[UnitOfWork]:
    """Yield the caller's unit of work, or one in the caller's transaction, or in a new one."""
    if uow is not None:
        yield uow
        return
    if tx is not None:
        yield UnitOfWork(tx, store.source)
        return
    async with store.transaction() as own:
        yield UnitOfWork(own, store.source)


async def lock_units_exclusively(uow: UnitOfWork, *unit_ids: str) -> None:
    """Hold the units' inventories still until commit (certification)."""
    await uow.lock_units(*unit_ids, exclusive=True)


def asset_number_at_append(tx: StoreTransaction, unit_id: str) -> str:
    """Return a stand-in for the unit's next asset number, which the append puts in its place.

    The number is taken inside the transaction's next flush (the append) by
    `equipment_next_asset_number`, and only if an event of that flush holds the stand-in.
    """
    placeholder = f"@asset-number:{uuid4().hex}"
    tx.fill_in(Fill(placeholder, "equipment_next_asset_number(%s)", (unit_id,)))
    return placeholder


async def next_asset_number(tx: StoreTransaction, unit_id: str) -> str:
    """Allocate the unit's next asset number in the caller's transaction."""
    cursor = await tx.connection.execute(_NEXT_ASSET_NUMBER, (unit_id,), prepare=True)
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101  (INSERT … RETURNING always returns the row)
    return domain.asset_number(unit_id, int(row[0]))


def _check_expected(stream_id: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise VersionConflictError(stream_id, expected, actual)


def _result(uow: UnitOfWork, stream_id: str, results: Sequence[AppendResult]) -> AppendResult:
    for result in results:
        if result.stream_id == stream_id:
            return result
    return AppendResult(stream_id, uow.versions.get(stream_id, 0), ())


def _context(context: AppendContext, unit_id: str) -> AppendContext:
    if context.unit_id is not None:
        return context
    return AppendContext(
        actor=context.actor,
        correlation_id=context.correlation_id,
        causation_id=context.causation_id,
        traceparent=context.traceparent,
        unit_id=unit_id,
    )


# ---------------------------------------------------------------------------------------------
# Loading outside a command


async def load_item(store: EventStore, item_id: UUID) -> Item | None:
    """Return the item as its stream says it is now, or None."""
    history = await store.load(domain.item_stream(item_id))
    return domain.replay_item((r.event(), r.version) for r in history)


async def load_product(store: EventStore, product_id: UUID) -> Product | None:
    """Return the product as its stream says it is now, or None."""
    history = await store.load(domain.product_stream(product_id))
    return domain.replay_product((r.event(), r.version) for r in history)


async def load_inventory(store: EventStore, unit_id: str) -> UnitInventory:
    """Return a unit's inventory state (its last certification, its pending transfers)."""
    history = await store.load(domain.inventory_stream(unit_id))
    return domain.replay_inventory(unit_id, ((r.event(), r.version) for r in history))


async def current_items(uow: UnitOfWork, unit_id: str) -> list[Item]:
    """Return the items the unit's inventory holds now, from the write side (not in transit).

    Every item that was ever in the unit has an event tagged with it; those streams are folded
    and the items still there kept, sorted by asset number then id.
    """
    cursor = await uow.tx.connection.execute(
        _ITEM_STREAMS_OF_UNIT, (unit_id, list(ITEM_EVENT_TYPES))
    )
    streams = [row[0] for row in await cursor.fetchall()]
    items = await uow.items(UUID(stream) for stream in streams)
    held = [
        item
        for item in items.values()
        if item is not None and item.unit_id == unit_id and item.transfer is None
    ]
    return sorted(held, key=lambda item: (item.asset_number, str(item.item_id)))


# ---------------------------------------------------------------------------------------------
# Catalogue


async def propose_product(
    command: ProposeProduct,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
) -> AppendResult:
    """Propose a product (approved at once when `command.is_approved`)."""
    stream = domain.product_stream(command.product_id)
    async with unit_of_work(store, tx) as uow:
        existing = await uow.product(command.product_id)
        events = domain.propose_product(existing, command, now=clock.now())
        return _result(uow, stream, await uow.append(events, context))


async def approve_product(
    command: ApproveProduct,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Approve a proposed product."""
    stream = domain.product_stream(command.product_id)
    async with unit_of_work(store, tx) as uow:
        product = await uow.product(command.product_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.approve_product(product, command, now=clock.now())
        return _result(uow, stream, await uow.append(events, context))


async def reject_product(
    command: RejectProduct,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Refuse a proposed product."""
    stream = domain.product_stream(command.product_id)
    async with unit_of_work(store, tx) as uow:
        product = await uow.product(command.product_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.reject_product(product, command, now=clock.now())
        return _result(uow, stream, await uow.append(events, context))


async def merge_product(
    command: MergeProduct,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Merge a duplicate product into an approved one."""
    stream = domain.product_stream(command.product_id)
    async with unit_of_work(store, tx) as uow:
        product = await uow.product(command.product_id)
        into = await uow.product(command.into_product_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.merge_product(product, into, command, now=clock.now())
        return _result(uow, stream, await uow.append(events, context))


# ---------------------------------------------------------------------------------------------
# Items


async def register_item(
    command: RegisterItem,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    directory: UnitDirectory,
    tx: StoreTransaction | None = None,
    uow: UnitOfWork | None = None,
) -> AppendResult:
    """Register an item; a repeat of the same registration answers the first result.

    Round trips: the unit's lock (none if the caller's `uow` holds it), one read of the item,
    product and serial-claim streams with the unit's last certification, the asset number, the
    append. The claim's stream is named by the product's manufacturer, which never changes once
    proposed: known from an earlier registration, it is read with the rest; else after.
    """
    stream = domain.item_stream(command.item_id)
    unit = await directory.known_unit(command.unit_id)
    async with unit_of_work(store, tx, uow) as work:
        await work.lock_units(command.unit_id)
        serial = domain.normalise_serial(command.serial_number)
        inventory = await work.read_for_act(command.unit_id, *registration_streams(command))
        existing = await work.item(command.item_id)
        if existing is not None:
            domain.register(
                existing,
                command,
                product=None,
                unit=unit,
                inventory=UnitInventory(command.unit_id),
                claim=None,
                allocated_asset_number=None,
                today=clock.today(ATHENS),
            )  # raises unless it is the same registration
            first = work.history[stream][0]
            return AppendResult(stream, first.version, (first.position,))
        product = await work.product(command.product_id)
        if product is not None:
            _remember_manufacturer(product)
        claim = (
            await work.claim((product.manufacturer_key, serial))
            if product is not None and serial is not None
            else None
        )
        allocated = None
        if not (command.asset_number or "").strip() and unit is not None and unit.is_active:
            allocated = asset_number_at_append(work.tx, command.unit_id)
        events = domain.register(
            None,
            command,
            product=product,
            unit=unit,
            inventory=inventory,
            claim=claim,
            allocated_asset_number=allocated,
            today=clock.today(ATHENS),
        )
        results = await work.append(events, _context(context, command.unit_id))
        return _result(work, stream, results)


def registration_streams(command: RegisterItem) -> list[str]:
    """Return the streams `register_item` reads first (with the unit's last certification)."""
    serial = domain.normalise_serial(command.serial_number)
    maker = _MANUFACTURER_KEYS.get(command.product_id)
    streams = [domain.item_stream(command.item_id), domain.product_stream(command.product_id)]
    if serial is not None and maker is not None:
        streams.append(domain.serial_stream(maker, serial))
    return streams


# product id → its manufacturer's key (set by the product's first event, never changed after).
_MANUFACTURER_KEYS: dict[UUID, str] = {}
_MANUFACTURER_KEYS_MAX = 10_000


def _remember_manufacturer(product: Product) -> None:
    if len(_MANUFACTURER_KEYS) >= _MANUFACTURER_KEYS_MAX:
        _MANUFACTURER_KEYS.clear()
    _MANUFACTURER_KEYS[product.product_id] = product.manufacturer_key


async def correct_item_details(
    command: CorrectItemDetails,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Record the corrected details that differ (nothing if none differ)."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item = domain.require_item(await uow.item(command.item_id), command.item_id)
        await uow.lock_units(item.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        product = None
        if command.product_id is not None and command.product_id != item.product_id:
            product = await uow.product(command.product_id)
        old_claim = new_claim = None
        new_key = domain.serial_key_after(item, command, product)
        if new_key != item.serial_key:
            if item.serial_key is not None:
                old_claim = await uow.claim(item.serial_key)
            if new_key is not None:
                new_claim = await uow.claim(new_key)
        events = domain.correct(
            item,
            command,
            product=product,
            old_claim=old_claim,
            new_claim=new_claim,
            inventory=await uow.inventory(item.unit_id),
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, item.unit_id))
        return _result(uow, stream, results)


async def change_item_status(
    command: ChangeItemStatus,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Change an item's functional status."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item = domain.require_item(await uow.item(command.item_id), command.item_id)
        await uow.lock_units(item.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.change_status(
            item, command, inventory=await uow.inventory(item.unit_id), today=clock.today(ATHENS)
        )
        results = await uow.append(events, _context(context, item.unit_id))
        return _result(uow, stream, results)


async def move_item(
    command: MoveItem,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    directory: UnitDirectory,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Move an item, with its parts, to another location of its unit."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item = domain.require_item(await uow.item(command.item_id), command.item_id)
        await uow.lock_units(item.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.move(
            item,
            command,
            unit=await directory.known_unit(item.unit_id),
            parts=await uow.parts_of(item),
            inventory=await uow.inventory(item.unit_id),
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, item.unit_id))
        return _result(uow, stream, results)


async def bundle_part(
    command: BundlePart,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Put an item into a bundle item."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        loaded = await uow.items([command.item_id, command.part_item_id])
        bundle = domain.require_item(loaded[command.item_id], command.item_id)
        await uow.lock_units(bundle.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.bundle(
            bundle,
            loaded[command.part_item_id],
            command,
            inventory=await uow.inventory(bundle.unit_id),
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, bundle.unit_id))
        return _result(uow, stream, results)


async def unbundle_part(
    command: UnbundlePart,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Take an item out of its bundle."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        loaded = await uow.items([command.item_id, command.part_item_id])
        bundle = domain.require_item(loaded[command.item_id], command.item_id)
        await uow.lock_units(bundle.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.unbundle(
            bundle,
            loaded[command.part_item_id],
            command,
            inventory=await uow.inventory(bundle.unit_id),
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, bundle.unit_id))
        return _result(uow, stream, results)


async def withdraw_item(
    command: WithdrawItem,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Withdraw an item (with its parts) by a decision."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item = domain.require_item(await uow.item(command.item_id), command.item_id)
        await uow.lock_units(item.unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        events = domain.withdraw(
            item,
            command,
            parts=await uow.parts_of(item),
            inventory=await uow.inventory(item.unit_id),
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, item.unit_id))
        return _result(uow, stream, results)


# ---------------------------------------------------------------------------------------------
# Transfers


async def transfer_item(
    command: TransferItem,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    directory: UnitDirectory,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Dispatch an item (with its parts) to another unit."""
    stream = domain.item_stream(command.item_id)
    destination = await directory.known_unit(command.to_unit_id)
    async with unit_of_work(store, tx) as uow:
        item = domain.require_item(await uow.item(command.item_id), command.item_id)
        await uow.lock_units(item.unit_id, command.to_unit_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        inventories = await uow.inventories(item.unit_id, command.to_unit_id)
        events = domain.dispatch(
            item,
            command,
            parts=await uow.parts_of(item),
            source=await directory.known_unit(item.unit_id),
            destination=destination,
            source_inventory=inventories[item.unit_id],
            destination_inventory=inventories[command.to_unit_id],
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, item.unit_id))
        return _result(uow, stream, results)


async def _pending_item(uow: UnitOfWork, item_id: UUID) -> tuple[Item, str, str]:
    item = domain.require_item(await uow.item(item_id), item_id)
    if item.transfer is None:
        raise domain.ItemNotInTransitError(item_id)
    source, destination = item.transfer.from_unit_id, item.transfer.to_unit_id
    await uow.lock_units(source, destination)
    await uow.inventories(source, destination)
    return item, source, destination


async def accept_transfer(
    command: AcceptTransfer,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    directory: UnitDirectory,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """The destination accepts an item in transit into one of its locations."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item, source, destination = await _pending_item(uow, command.item_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        known = await directory.known_unit(destination)
        allocated = None
        if command.assign_asset_number and not (command.asset_number or "").strip():
            allocated = await next_asset_number(uow.tx, destination)
        inventories = await uow.inventories(source, destination)
        events = domain.accept(
            item,
            command,
            parts=await uow.parts_of(item),
            destination=known,
            source_inventory=inventories[source],
            destination_inventory=inventories[destination],
            allocated_asset_number=allocated,
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, destination))
        return _result(uow, stream, results)


async def reject_transfer(
    command: RejectTransfer,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """The destination refuses an item in transit; it returns to the source."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item, source, destination = await _pending_item(uow, command.item_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        inventories = await uow.inventories(source, destination)
        events = domain.reject(
            item,
            command,
            parts=await uow.parts_of(item),
            source_inventory=inventories[source],
            destination_inventory=inventories[destination],
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, source))
        return _result(uow, stream, results)


async def cancel_transfer(
    command: CancelTransfer,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """The source calls off a transfer the destination has not accepted."""
    stream = domain.item_stream(command.item_id)
    async with unit_of_work(store, tx) as uow:
        item, source, destination = await _pending_item(uow, command.item_id)
        _check_expected(stream, expected_version, uow.versions[stream])
        inventories = await uow.inventories(source, destination)
        events = domain.cancel(
            item,
            command,
            parts=await uow.parts_of(item),
            source_inventory=inventories[source],
            destination_inventory=inventories[destination],
            today=clock.today(ATHENS),
        )
        results = await uow.append(events, _context(context, source))
        return _result(uow, stream, results)
