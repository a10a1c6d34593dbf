"""Certification of a unit's inventory (οριστικοποίηση): the rules, and the one-transaction handler.

Why this exists: twice a year the unit head certifies that the unit's equipment list is complete
and correct as of now (ARCHITECTURE.md §1). The certification must bind to exactly the list it
covers, so the list, its content hash, the PDF and the `InventoryCertified` event are produced in
one store transaction from the write side (the unit's events in the store, never a read model),
and it is refused, with every reason at once, while a transfer to or from the unit is pending or
a bundle lacks a required part.

Usage::

    result = await certify_inventory(CertifyInventory(unit_id, certification_id, signer_id),
                                     tx=tx, clock=clock, context=context, unit=details)

How it holds (in one transaction, READ COMMITTED):
1. fold the unit's inventory stream (`inventory:<unit>`: pending transfers, last certification)
   and the unit's events into the current list (`equipment.asof.fold_unit`, no checkpoints);
2. `decide`: refusals, else the certified content (`equipment.certexport`) and its hash;
3. render the PDF and write the `certifications` row (export text and PDF);
4. append `InventoryCertified` to the inventory stream at the version read in 1 (a transfer opened
   meanwhile makes it a version conflict: the caller retries);
5. with the append holding the store's position lock (no other append can commit before ours),
   check that no event of the unit was committed after the list's position; if one was, roll back
   and start again (`CertificationRaceError`, retried by `certify_with_retries`).
So the certified list is exactly the unit's state at `covers_position`, and nothing of the unit
committed between that position and the certification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.rows import namedtuple_row

from equipment import asof, catalogue
from equipment.certexport import (
    CertificationHeader,
    certified_content,
    content_hash,
    export_document,
    export_text,
)
from equipment.certpdf import render_certification_pdf
from equipment.domain.inventory import UnitInventory, inventory_stream, replay_inventory
from equipment.handlers import unit_lock_key
from shared.clock import ATHENS, Clock
from shared.events.equipment import InventoryCertified
from shared.eventstore import AppendContext, StoreTransaction, record_from_row

RACE_RETRIES = 3

# The fields of an item that a certification binds to (the hashed list), in the fold's names.
ENTRY_FIELDS = (
    "item_id",
    "asset_number",
    "is_legacy_asset_number",
    "product_id",
    "category_id",
    "manufacturer",
    "model",
    "serial_number",
    "location_id",
    "status",
    "bundle_item_id",
    "acquired_on",
    "funding_programme",
    "contract",
    "cost_eur",
    "invoice",
    "warranty_ends_on",
    "version",
    "hash",
)


@dataclass(frozen=True, slots=True)
class CertifyInventory:
    """Certify the inventory of `unit_id` as it is now, signed by `signer_id`."""

    unit_id: str
    certification_id: UUID
    signer_id: str
    signer_name: str | None = None


class CertificationRefusedError(Exception):
    """The unit's inventory cannot be certified now; `reasons` says every why."""

    def __init__(self, unit_id: str, reasons: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(f"unit {unit_id}: " + "; ".join(str(r["detail"]) for r in reasons))
        self.unit_id = unit_id
        self.reasons = list(reasons)


class CertificationRaceError(Exception):
    """An event of the unit committed between the list's fold and the certification's append."""


@dataclass(frozen=True, slots=True)
class Certified:
    """What a certification produced."""

    header: CertificationHeader
    content: Mapping[str, Any]
    export_json: str
    pdf: bytes
    position: int
    version: int


# ---------------------------------------------------------------------------------------------
# The rules, without I/O


def missing_parts(category_id: str, parts: Mapping[str, str]) -> dict[str, int]:
    """Return, per required part category, how many parts a bundle of `category_id` lacks."""
    category = catalogue.category(category_id)
    if category is None or not category.is_bundle:
        return {}
    held: dict[str, int] = {}
    for part_category in parts.values():
        held[part_category] = held.get(part_category, 0) + 1
    return {
        rule.category_id: rule.minimum - held.get(rule.category_id, 0)
        for rule in category.parts
        if held.get(rule.category_id, 0) < rule.minimum
    }


def refusals(
    unit_id: str, inventory: UnitInventory, items: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Return every reason the unit's inventory cannot be certified now (empty: it can)."""
    reasons: list[dict[str, Any]] = []
    for transfer in sorted(inventory.pending_transfers.values(), key=lambda t: str(t.transfer_id)):
        is_incoming = transfer.to_unit_id == unit_id
        direction = "from" if is_incoming else "to"
        other = transfer.from_unit_id if is_incoming else transfer.to_unit_id
        reasons.append(
            {
                "reason": "transfer-pending",
                "transfer_id": str(transfer.transfer_id),
                "item_id": str(transfer.item_id),
                "from_unit_id": transfer.from_unit_id,
                "to_unit_id": transfer.to_unit_id,
                "detail": f"a transfer {direction} unit {other} of item {transfer.item_id},"
                f" dispatched on {transfer.performed_on}, is pending",
            }
        )
    for item in items:
        lacking = missing_parts(str(item["category_id"]), item.get("parts") or {})
        if lacking:
            reasons.append(
                {
                    "reason": "bundle-missing-parts",
                    "item_id": str(item["item_id"]),
                    "asset_number": item.get("asset_number"),
                    "missing_parts": lacking,
                    "detail": f"bundle {item.get('asset_number')} ({item['item_id']}) lacks"
                    + ", ".join(f" {count} {part}" for part, count in sorted(lacking.items())),
                }
            )
    return reasons


def certified_entry(row: Mapping[str, Any]) -> dict[str, str | int | bool | None]:
    """Return the certified (hashed) form of one item of the fold."""
    entry: dict[str, str | int | bool | None] = {}
    for name in ENTRY_FIELDS:
        value = row.get(name)
        entry[name] = value if value is None or isinstance(value, str | int | bool) else str(value)
    return entry


def decide(
    command: CertifyInventory,
    inventory: UnitInventory,
    items: Sequence[Mapping[str, Any]],
    *,
    covers_position: int,
    now: datetime,
) -> tuple[CertificationHeader, dict[str, Any]]:
    """Return the certification's header and content; raise `CertificationRefusedError`."""
    reasons = refusals(command.unit_id, inventory, items)
    if reasons:
        raise CertificationRefusedError(command.unit_id, reasons)
    content = certified_content(command.unit_id, (certified_entry(row) for row in items))
    header = CertificationHeader(
        certification_id=command.certification_id,
        unit_id=command.unit_id,
        certified_at=now,
        certified_on=now.astimezone(ATHENS).date(),
        signer_id=command.signer_id,
        item_count=len(content["items"]),
        content_hash=content_hash(content),
        covers_position=covers_position,
    )
    return header, content


def printable_items(content: Mapping[str, Any]) -> dict[str, Any]:
    """Return the content with the category's Greek label beside each item, for the PDF."""
    items = []
    for item in content["items"]:
        category = catalogue.category(str(item["category_id"]))
        items.append({**item, "category": category.label_el if category else item["category_id"]})
    return {**content, "items": items}


# ---------------------------------------------------------------------------------------------
# The handler (one store transaction)

_INSERT = (
    "INSERT INTO certifications (certification_id, unit_id, certified_at, certified_on,"
    " signer_id, item_count, content_hash, covers_position, export_json, pdf)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_LOCK_UNIT = "SELECT pg_advisory_xact_lock(%s)"
_LATER_EVENT = (
    "SELECT position FROM events WHERE unit_id = %s AND position > %s AND stream_id <> %s"
    " AND position < %s LIMIT 1"
)


async def load_inventory(connection: psycopg.AsyncConnection[Any], unit_id: str) -> UnitInventory:
    """Fold the unit's inventory stream (pending transfers, last certification) on `connection`."""
    cursor = connection.cursor(row_factory=namedtuple_row)
    await cursor.execute(
        "SELECT position, event_id, stream_id, version, type, schema_version, data, metadata,"
        " unit_id, recorded_at, prevhash, hash FROM events WHERE stream_id = %s ORDER BY version",
        (inventory_stream(unit_id),),
    )
    rows = await cursor.fetchall()
    recorded = [record_from_row("", row) for row in rows]
    return replay_inventory(unit_id, ((r.event(), r.version) for r in recorded))


async def certify_inventory(
    command: CertifyInventory,
    *,
    tx: StoreTransaction,
    clock: Clock,
    context: AppendContext,
    unit: Mapping[str, Any] | None = None,
) -> Certified:
    """Certify the unit's inventory inside `tx` (see the module docstring for how it holds)."""
    connection = tx.connection
    # Every act on the unit's items holds its inventory lock in shared mode (equipment.handlers):
    # holding it exclusively keeps the list still until commit; the check after the append
    # still catches a writer that bypasses the handlers.
    await connection.execute(_LOCK_UNIT, (unit_lock_key(command.unit_id),))
    inventory = await load_inventory(connection, command.unit_id)
    state, _ = await asof.fold_unit(
        connection, command.unit_id, use_checkpoints=False, save_checkpoints=False
    )
    items = sorted(state.items.values(), key=asof.sort_key)
    now = clock.now()
    header, content = decide(command, inventory, items, covers_position=state.position, now=now)
    details = {"unit_id": command.unit_id, **(unit or {})}
    export = export_text(export_document(header, content, unit=details))
    pdf = await asyncio.to_thread(
        render_certification_pdf,
        header,
        printable_items(content),
        unit=details,
        signer_name=command.signer_name,
    )
    await connection.execute(
        _INSERT,
        (
            header.certification_id,
            header.unit_id,
            header.certified_at,
            header.certified_on,
            header.signer_id,
            header.item_count,
            header.content_hash,
            header.covers_position,
            export,
            pdf,
        ),
    )
    stream = inventory_stream(command.unit_id)
    tx.append(
        stream,
        [
            InventoryCertified(
                unit_id=command.unit_id,
                certification_id=header.certification_id,
                certified_at=header.certified_at,
                certified_on=header.certified_on,
                signer_id=header.signer_id,
                item_count=header.item_count,
                content_hash=header.content_hash,
                covers_position=header.covers_position,
            )
        ],
        expected_version=inventory.version,
        context=context,
    )
    (result,) = await tx.flush()
    # Our append holds the position lock until commit: every earlier append has committed, so
    # this sees every event of the unit that precedes the certification.
    cursor = await connection.execute(
        _LATER_EVENT, (command.unit_id, header.covers_position, stream, result.last_position)
    )
    if await cursor.fetchone() is not None:
        raise CertificationRaceError(command.unit_id)
    return Certified(header, content, export, pdf, result.last_position, result.version)


T = TypeVar("T")


async def certify_with_retries(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (one whole transaction) again when an item change raced the certification."""
    for _ in range(RACE_RETRIES - 1):
        try:
            return await attempt()
        except CertificationRaceError:
            continue
    return await attempt()


# ---------------------------------------------------------------------------------------------
# Reading certifications back


@dataclass(frozen=True, slots=True)
class CertificationStatus:
    """A unit's latest certification and whether its inventory changed since."""

    header: CertificationHeader
    is_changed_since: bool
    current_hash: str
    current_item_count: int


_HEADER_COLUMNS = (
    "certification_id, unit_id, certified_at, certified_on, signer_id, item_count,"
    " content_hash, covers_position"
)


def _header(row: Any) -> CertificationHeader:
    return CertificationHeader(
        certification_id=row.certification_id,
        unit_id=row.unit_id,
        certified_at=row.certified_at,
        certified_on=row.certified_on,
        signer_id=row.signer_id,
        item_count=row.item_count,
        content_hash=row.content_hash,
        covers_position=row.covers_position,
    )


async def list_certifications(
    connection: psycopg.AsyncConnection[Any], unit_id: str
) -> list[CertificationHeader]:
    """Return the unit's certifications, latest first."""
    cursor = connection.cursor(row_factory=namedtuple_row)
    await cursor.execute(
        f"SELECT {_HEADER_COLUMNS} FROM certifications WHERE unit_id = %s"  # noqa: S608  (constant columns)
        " ORDER BY certified_at DESC, certification_id",
        (unit_id,),
    )
    return [_header(row) for row in await cursor.fetchall()]


async def get_certification(
    connection: psycopg.AsyncConnection[Any], certification_id: UUID
) -> CertificationHeader | None:
    """Return one certification's header, or None."""
    cursor = connection.cursor(row_factory=namedtuple_row)
    await cursor.execute(
        f"SELECT {_HEADER_COLUMNS} FROM certifications WHERE certification_id = %s",  # noqa: S608  (constant columns)
        (certification_id,),
    )
    row = await cursor.fetchone()
    return _header(row) if row is not None else None


async def certification_document(
    connection: psycopg.AsyncConnection[Any], certification_id: UUID, kind: str
) -> str | bytes | None:
    """Return a certification's stored `export` (JSON text) or `pdf` (bytes), or None."""
    column = {"export": "export_json", "pdf": "pdf"}[kind]
    cursor = await connection.execute(
        f"SELECT {column} FROM certifications WHERE certification_id = %s",  # noqa: S608  (a fixed column)
        (certification_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    value = row[0]
    return bytes(value) if kind == "pdf" else str(value)


async def certification_status(
    connection: psycopg.AsyncConnection[Any], unit_id: str
) -> CertificationStatus | None:
    """Return the unit's latest certification and whether its list differs now (None: never)."""
    certifications = await list_certifications(connection, unit_id)
    if not certifications:
        return None
    latest = certifications[0]
    state, _ = await asof.fold_unit(connection, unit_id)
    current = certified_content(unit_id, (certified_entry(row) for row in state.items.values()))
    current_hash = content_hash(current)
    return CertificationStatus(
        header=latest,
        is_changed_since=current_hash != latest.content_hash,
        current_hash=current_hash,
        current_item_count=len(current["items"]),
    )
