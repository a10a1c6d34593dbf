"""Applying validated import rows: catalogue and locations resolved, rows decided and appended in
batches, each batch one store transaction with its per-row results.

Why batches: one registration is two streams (the item and its serial claim); appending rows one
transaction at a time costs several round trips each. A batch reads every stream its rows need in
one round trip, decides each row with the domain's own `register` (the rules of the API, row by
row: a refused row is an error result, the others go on), allocates the asset numbers it needs in
one statement, and appends all of it in one call. If the append meets a concurrent change
(`VersionConflictError`), the batch is rolled back and its rows are applied one by one through the
handlers instead.

Resolution (per file, cached): the category cell is matched (accent- and case-blind) with a
category's Greek or English label or id; the product with an approved product of that category,
manufacturer and model (`products_view`, following merges), else the unit's own proposal of it
(a deterministic id per unit and product, so a re-import finds it), else it is proposed in the
batch (the items then show as pending approval); the location cell with the name or id of an open
location of the unit (blank: the unit's only location, if it has one).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any
from uuid import UUID, uuid5

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from equipment import catalogue, domain, handlers, views
from equipment.commands import ProposeProduct, RegisterItem
from equipment.domain import Item, KnownUnit
from equipment.importer.rows import (
    ITEM_ID_NAMESPACE,
    LABELS,
    ImportRow,
    ImportSummary,
    Outcome,
    RowResult,
)
from shared.clock import ATHENS, Clock
from shared.events.base import Event
from shared.events.equipment import Acquisition, ItemRegistered, ItemStatus
from shared.eventstore import AppendContext, EventStore, StoreTransaction, VersionConflictError
from shared.greek import fold as _fold_text

BATCH_SIZE = 500


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Return `shared.greek.fold(text)`, cached: a file repeats the same few cells on every row."""
    return _fold_text(text)


@lru_cache(maxsize=1)
def _category_names() -> dict[str, str]:
    """Return every folded name (id, Greek and English label) of an assignable category."""
    names: dict[str, str] = {}
    for category in catalogue.CATEGORIES.values():
        if category.is_assignable:
            for name in (category.category_id, category.label_el, category.label_en):
                names.setdefault(fold(name), category.category_id)
    return names


_PLACEHOLDER_NUMBER = "0"

_INSERT_ROWS = (
    "INSERT INTO equipment_import_rows (import_id, line, outcome, item_id, reason, field, notes)"
    " SELECT %s, r.* FROM unnest(%s::integer[], %s::text[], %s::uuid[], %s::text[], %s::text[],"
    " %s::jsonb[]) AS r ON CONFLICT DO NOTHING"
)
_ALLOCATE = (
    "INSERT INTO equipment_asset_sequences AS s (unit_id, last_number) VALUES (%s, %s)"
    " ON CONFLICT (unit_id) DO UPDATE SET last_number = s.last_number + EXCLUDED.last_number"
    " RETURNING last_number"
)


class _RowError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass
class Resolver:
    """Catalogue and location lookups for one import of one unit (cached per file)."""

    unit_id: str
    session: AsyncSession
    locations: dict[str, str] = field(default_factory=dict)
    only_location: str | None = None
    products: dict[tuple[str, str, str], tuple[UUID, bool]] = field(default_factory=dict)

    @classmethod
    async def load(cls, unit_id: str, session: AsyncSession) -> Resolver:
        """Read the unit's open locations once."""
        resolver = cls(unit_id, session)
        open_locations = [
            row for row in await views.unit_locations(session, unit_id) if not row["is_retired"]
        ]
        for row in open_locations:
            resolver.locations[fold(row["name"])] = row["location_id"]
            resolver.locations[fold(row["location_id"])] = row["location_id"]
        if len(open_locations) == 1:
            resolver.only_location = open_locations[0]["location_id"]
        return resolver

    def location(self, text: str | None) -> str:
        """Return the location id a cell names."""
        if text is None:
            if self.only_location is not None:
                return self.only_location
            raise _RowError("location", "is required (the unit has several locations)")
        found = self.locations.get(fold(text))
        if found is None:
            raise _RowError("location", f"{text!r} is not an open location of unit {self.unit_id}")
        return found

    @staticmethod
    def category(text: str) -> str:
        """Return the category id a cell names (a leaf category)."""
        found = _category_names().get(fold(text))
        if found is not None:
            return found
        raise _RowError("category", f"{text!r} is not a category of the catalogue")

    async def product(self, category_id: str, manufacturer: str, model: str) -> tuple[UUID, bool]:
        """Return (product id, whether it must be proposed) for a row's product."""
        key = (category_id, fold(manufacturer), fold(model))
        if key in self.products:
            return self.products[key]
        table = views.products_view
        rows = await self.session.execute(
            select(table.c.product_id, table.c.status, table.c.merged_into).where(
                table.c.category_id == category_id,
                table.c.status.in_(("approved", "merged")),
            )
        )
        found: UUID | None = None
        for product_id, status, merged_into in rows:
            matches = await self._same(product_id, manufacturer, model)
            if matches:
                found = merged_into if status == "merged" and merged_into else product_id
                break
        if found is not None:
            self.products[key] = (found, False)
        else:
            own = uuid5(ITEM_ID_NAMESPACE, f"product\x1f{self.unit_id}\x1f{'/'.join(key)}")
            self.products[key] = (own, True)
        return self.products[key]

    async def _same(self, product_id: UUID, manufacturer: str, model: str) -> bool:
        row = await views.get_product(self.session, product_id)
        return (
            row is not None
            and fold(row["manufacturer"]) == fold(manufacturer)
            and fold(row["model"]) == fold(model)
        )


@dataclass
class _Decided:
    row: ImportRow
    command: RegisterItem
    needs_number: bool
    proposal: ProposeProduct | None


def _command(row: ImportRow, unit_id: str, product_id: UUID, location_id: str, *, import_id: UUID,
             today: date) -> RegisterItem:  # fmt: skip
    return RegisterItem(
        item_id=row.item_id,
        unit_id=unit_id,
        product_id=product_id,
        location_id=location_id,
        performed_on=today,
        serial_number=row.serial_number,
        asset_number=row.asset_number,
        acquisition=Acquisition(
            acquired_on=row.acquired_on,
            funding_programme=row.funding_programme,
            contract=row.contract,
            cost_eur=row.cost_eur,
            invoice=row.invoice,
        ),
        warranty_ends_on=row.warranty_until,
        status=ItemStatus(row.status),
        import_id=import_id,
    )


def _with_asset_number(events: list[Event], number: str) -> list[Event]:
    """Return a registration's events with its allocated asset number in place of the stand-in."""
    return [
        event.model_copy(update={"asset_number": number})
        if isinstance(event, ItemRegistered)
        else event
        for event in events
    ]


def _error(row: ImportRow, column: str, reason: str) -> RowResult:
    label = LABELS.get(column, column)
    return RowResult(
        row.line, Outcome.ERROR, item_id=row.item_id, reason=f"{label}: {reason}", field=label
    )


def _domain_error(row: ImportRow, exc: Exception) -> RowResult:
    column = str(getattr(exc, "field", None) or getattr(exc, "field_name", None) or "")
    label = LABELS.get(column.rsplit(".", maxsplit=1)[-1], column) or None
    return RowResult(
        row.line,
        Outcome.ERROR,
        item_id=row.item_id,
        reason=f"{type(exc).__name__}: {exc}",
        field=label,
    )


def _unchanged(row: ImportRow, item: Item) -> RowResult:
    notes: list[str] = []
    if row.serial_number and domain.normalise_serial(row.serial_number) != item.serial_number:
        notes.append("the serial number differs from the recorded item")
    if row.asset_number and row.asset_number != item.asset_number:
        notes.append("the asset number differs from the recorded item")
    if notes:
        notes.append("corrections are made with the item's own commands, not by re-importing")
    return RowResult(row.line, Outcome.UNCHANGED, item_id=row.item_id, notes=tuple(notes))


@dataclass
class BatchImporter:
    """Applies rows of one unit's import in batches of `BATCH_SIZE`."""

    store: EventStore
    clock: Clock
    context: AppendContext
    unit: KnownUnit | None
    resolver: Resolver
    import_id: UUID
    directory: handlers.UnitDirectory
    summary: ImportSummary = field(default_factory=ImportSummary)

    async def run(
        self, rows: AsyncIterable[ImportRow | RowResult], batch_size: int = BATCH_SIZE
    ) -> AsyncIterator[RowResult]:
        """Apply every row; yield each result in file order."""
        batch: list[ImportRow | RowResult] = []
        async for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                for result in await self.apply_batch(batch):
                    yield self.summary.add(result)
                batch = []
        if batch:
            for result in await self.apply_batch(batch):
                yield self.summary.add(result)

    async def apply_batch(self, batch: Sequence[ImportRow | RowResult]) -> list[RowResult]:
        """Apply a batch in one transaction (or row by row after a conflict)."""
        try:
            async with self.store.transaction() as tx:
                results = await self._decide_and_append(tx, batch)
                await _record_rows(tx, self.import_id, results)
                return results
        except VersionConflictError:
            return await self._one_by_one(batch)

    async def _decide_and_append(  # noqa: PLR0912  (one step per kind of stream a row needs)
        self, tx: StoreTransaction, batch: Sequence[ImportRow | RowResult]
    ) -> list[RowResult]:
        uow = handlers.UnitOfWork(tx, self.store.source)
        await uow.lock_units(self.resolver.unit_id)
        today = self.clock.today(ATHENS)
        results: dict[int, RowResult] = {}
        candidates: dict[int, tuple[ImportRow, RegisterItem, ProposeProduct | None]] = {}
        for index, entry in enumerate(batch):
            if isinstance(entry, RowResult):
                results[index] = entry
                continue
            try:
                candidates[index] = (entry, *await self._command(entry, today))
            except _RowError as problem:
                results[index] = _error(entry, problem.column, problem.reason)
        # One round trip: every row's item stream, the rows' products and the unit's last
        # certification (not its whole inventory stream, which grows with every transfer).
        inventory = await uow.read_for_act(
            self.resolver.unit_id,
            *(domain.item_stream(row.item_id) for row, _, _ in candidates.values()),
            *(domain.product_stream(c.product_id) for _, c, _ in candidates.values()),
        )
        existing = await uow.items(row.item_id for row, _, _ in candidates.values())
        fresh = {i: c for i, c in candidates.items() if existing.get(c[0].item_id) is None}
        proposals = {p.product_id: p for _, _, p in fresh.values() if p is not None}
        products: dict[UUID, Any] = {
            pid: await uow.product(pid) for pid in {c.product_id for _, c, _ in fresh.values()}
        }
        new_products: list[Event] = []
        for product_id, proposal in proposals.items():
            if products.get(product_id) is None:
                proposed = domain.propose_product(None, proposal, now=self.clock.now())
                new_products += proposed
                products[product_id] = domain.replay_product((e, 1) for e in proposed)
        claims: dict[tuple[str, str], domain.SerialClaim] = {}
        keys = set()
        for _, command, _ in fresh.values():
            product = products.get(command.product_id)
            serial = domain.normalise_serial(command.serial_number)
            if product is not None and serial is not None:
                keys.add((product.manufacturer_key, serial))
        await uow.read(*(domain.serial_stream(*key) for key in keys))
        for key in keys:
            claims[key] = await uow.claim(key)
        # Decide with a placeholder number to learn which rows pass, allocate exactly that many
        # numbers (no gaps), then put the real ones in the registrations (the number is used for
        # nothing else, so deciding again would give the same events).
        passing: list[tuple[int, ImportRow, RegisterItem, list[Event]]] = []
        for index, (entry, command, _) in candidates.items():
            item = existing.get(entry.item_id)
            if item is not None:
                results[index] = _unchanged(entry, item)
                continue
            try:
                decided = self._decide(
                    command, products, claims, inventory, today, _PLACEHOLDER_NUMBER
                )
            except domain.EquipmentDomainError as exc:
                results[index] = _domain_error(entry, exc)
                continue
            passing.append((index, entry, command, decided))
        wanted = sum(1 for _, _, c, _ in passing if not (c.asset_number or "").strip())
        numbers = iter(await self._allocate(tx, wanted))
        events: list[Event] = list(new_products)
        for index, entry, command, decided in passing:
            is_legacy = bool((command.asset_number or "").strip())
            events += decided if is_legacy else _with_asset_number(decided, next(numbers))
            results[index] = RowResult(entry.line, Outcome.CREATED, item_id=entry.item_id)
        if events:
            await uow.append(events, self.context)
        return [results[index] for index in range(len(batch))]

    def _decide(  # noqa: PLR0917  (private; every argument is the batch's state)
        self,
        command: RegisterItem,
        products: dict[UUID, Any],
        claims: dict[tuple[str, str], domain.SerialClaim],
        inventory: domain.UnitInventory,
        today: date,
        number: str | None,
    ) -> list[Event]:
        product = products.get(command.product_id)
        serial = domain.normalise_serial(command.serial_number)
        claim = claims.get((product.manufacturer_key, serial)) if product and serial else None
        return domain.register(
            None,
            command,
            product=product,
            unit=self.unit,
            inventory=inventory,
            claim=claim,
            allocated_asset_number=number,
            today=today,
        )

    async def _command(
        self, row: ImportRow, today: date
    ) -> tuple[RegisterItem, ProposeProduct | None]:
        category_id = self.resolver.category(row.category)
        location_id = self.resolver.location(row.location)
        product_id, must_propose = await self.resolver.product(
            category_id, row.manufacturer, row.model
        )
        proposal = (
            ProposeProduct(
                product_id=product_id,
                category_id=category_id,
                manufacturer=row.manufacturer,
                model=row.model,
                proposed_by_unit_id=self.resolver.unit_id,
            )
            if must_propose
            else None
        )
        command = _command(
            row, self.resolver.unit_id, product_id, location_id, import_id=self.import_id,
            today=today,
        )  # fmt: skip
        return command, proposal

    async def _allocate(self, tx: StoreTransaction, count: int) -> list[str]:
        """Take `count` asset numbers of the unit in one statement (the handlers' counter row)."""
        if count == 0:
            return []
        cursor = await tx.connection.execute(_ALLOCATE, (self.resolver.unit_id, count))
        row = await cursor.fetchone()
        assert row is not None  # noqa: S101  (INSERT … RETURNING always returns the row)
        last = int(row[0])
        unit_id = self.resolver.unit_id
        return [domain.asset_number(unit_id, n) for n in range(last - count + 1, last + 1)]

    async def _one_by_one(self, batch: Sequence[ImportRow | RowResult]) -> list[RowResult]:
        results: list[RowResult] = []
        today = self.clock.today(ATHENS)
        for entry in batch:
            if isinstance(entry, RowResult):
                results.append(entry)
                continue
            results.append(await self._apply_one(entry, today))
        return results

    async def _apply_one(self, row: ImportRow, today: date) -> RowResult:
        try:
            command, proposal = await self._command(row, today)
        except _RowError as problem:
            return _error(row, problem.column, problem.reason)
        try:
            async with self.store.transaction() as tx:
                existing = await handlers.UnitOfWork(tx, self.store.source).item(row.item_id)
                if existing is not None:
                    result = _unchanged(row, existing)
                else:
                    if proposal is not None:
                        uow = handlers.UnitOfWork(tx, self.store.source)
                        if await uow.product(proposal.product_id) is None:
                            await handlers.propose_product(
                                proposal, store=self.store, clock=self.clock,
                                context=self.context, tx=tx,
                            )  # fmt: skip
                    await handlers.register_item(
                        command, store=self.store, clock=self.clock, context=self.context,
                        directory=self.directory, tx=tx,
                    )  # fmt: skip
                    result = RowResult(row.line, Outcome.CREATED, item_id=row.item_id)
                await _record_rows(tx, self.import_id, [result])
                return result
        except (domain.EquipmentDomainError, VersionConflictError) as exc:
            return _domain_error(row, exc)


async def _record_rows(tx: StoreTransaction, import_id: UUID, results: Sequence[RowResult]) -> None:
    """Write the rows' results in one statement (arrays unnested server-side)."""
    if not results:
        return
    await tx.connection.execute(
        _INSERT_ROWS,
        (
            import_id,
            [r.line for r in results],
            [r.outcome.value for r in results],
            [r.item_id for r in results],
            [r.reason for r in results],
            [r.field for r in results],
            [json.dumps(list(r.notes), ensure_ascii=False) if r.notes else None for r in results],
        ),
    )
