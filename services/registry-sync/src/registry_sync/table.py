"""A body's registry table: items in, grouped rows out; its content hash and its push payload.

Why this exists: the national registry holds, per body, rows of (category, manufacturer, model,
year, in operation) with a quantity. Which items count, as what, and how rows are grouped, sorted
and hashed are the rules of DESIGN.md ("Rules for an item"); they live here as pure functions so
the projector, the ledger, the reconciliation and the CSV/XLSX exports agree to the byte.

Usage::

    table = build_table([ItemFacts("laptop", "Dell Inc.", "Latitude 3520", 2021, "in_use", False)])
    table.rows          # (Row("LAPTOP", "Φορητοί υπολογιστές", "DELL", "Latitude 3520", 2021,
                        #      True, 1),)
    table.content_hash      # sha256 hex over the rows only
    build_table_from_groups([(facts, 12)])   # from SELECT …, count(*) GROUP BY …
    to_payload(table, body_code="0551010", …, mapping_version=MAPPING_VERSION)

Notes:
- Order of the rules: the status first (a withdrawn or lost item is not held, whatever it is), then
  the components (cpu, ram, hard_disk, monitor: inside a bundle never reported; a stand-alone
  monitor is a MONITOR row), then the mapping's outcome for the category.
- Which categories are components is the equipment catalogue's fact (`is_component`); services do
  not import each other, so the set is repeated here and a unit test compares the two.
- Strings sort by code point (Python's `str` order), which is UTF-8 byte order: the order any
  receiver gets with a byte-wise or "C" collation.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as ReadOnlyDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from registry_sync.mapping import Mapping, load_mapping, normalise_manufacturer, normalise_model
from shared.events.equipment import ItemStatus

BodyStatus = Literal["active", "suspended", "abolished", "merged"]
Basis = Literal["live", "certified"]

IN_OPERATION_STATUSES: Final = frozenset({ItemStatus.IN_USE, ItemStatus.IN_STORAGE})
NOT_IN_OPERATION_STATUSES: Final = frozenset(
    {ItemStatus.OUT_OF_ORDER, ItemStatus.UNDER_REPAIR, ItemStatus.FOR_WITHDRAWAL}
)
NOT_HELD_STATUSES: Final = frozenset({ItemStatus.WITHDRAWN, ItemStatus.LOST})
COMPONENT_CATEGORIES: Final = frozenset({"cpu", "ram", "hard_disk", "monitor"})


class UnknownItemStatusError(ValueError):
    """An item's status is not an `ItemStatus` value (a bug upstream, never guessed at)."""


class InvalidPayloadError(ValueError):
    """A payload's arguments or a received row break the contract; the message says which."""


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the table needs to know about one item (or a group of alike items)."""

    category_id: str
    manufacturer: str
    model: str
    acquisition_year: int | None
    status: str  # an ItemStatus value
    in_bundle: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the registry's table: a group of alike pieces with their quantity."""

    category_code: str
    category_label: str
    manufacturer: str
    model: str
    acquisition_year: int | None
    in_operation: bool
    quantity: int


@dataclass(frozen=True, slots=True)
class NotReported:
    """Items held but not reported, by reason and local category."""

    reason: str
    local_category: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Excluded:
    """Items left out because of their status (not held any more)."""

    status: str
    quantity: int


@dataclass(frozen=True)
class Table:
    """A body's table: the registry's rows, what was left out and why, and how many items were read.

    `content_hash` is derived from `rows`, so it can never disagree with them.
    """

    rows: tuple[Row, ...]
    not_reported: tuple[NotReported, ...]
    excluded_by_status: tuple[Excluded, ...]
    item_count: int  # every item read: reported, not reported and excluded by status

    @property
    def content_hash(self) -> str:
        """Return the sha256 hex of the rows, as DESIGN.md defines it."""
        return content_hash(self.rows)


_RowKey = tuple[str, str, str, str, int | None, bool]


def row_sort_key(row: Row) -> tuple[str, str, str, bool, int, bool]:
    """Return the key rows are sorted by: year None first, not in operation first."""
    year = row.acquisition_year
    return (
        row.category_code,
        row.manufacturer,
        row.model,
        year is not None,
        year or 0,
        row.in_operation,
    )


def _status(value: str) -> ItemStatus:
    try:
        return ItemStatus(value)
    except ValueError:
        raise UnknownItemStatusError(value) from None


def build_table_from_groups(
    groups: Iterable[tuple[ItemFacts, int]], mapping: Mapping | None = None
) -> Table:
    """Return the table of items given as (facts, how many items share them)."""
    mapping = mapping or load_mapping()
    rows: Counter[_RowKey] = Counter()
    not_reported: Counter[tuple[str, str]] = Counter()
    excluded: Counter[str] = Counter()
    item_count = 0
    for facts, count in groups:
        if count < 1:
            raise ValueError(f"a group counts at least one item, not {count}")
        item_count += count
        status = _status(facts.status)
        if status in NOT_HELD_STATUSES:
            excluded[status.value] += count
            continue
        if facts.category_id in COMPONENT_CATEGORIES and (
            facts.in_bundle or facts.category_id != "monitor"
        ):
            not_reported["component_of_bundle", facts.category_id] += count
            continue
        outcome = mapping.outcome(facts.category_id)
        if outcome.registry_code is None or outcome.registry_label is None:
            not_reported[outcome.reason or "mapping_pending", facts.category_id] += count
            continue
        key = (
            outcome.registry_code,
            outcome.registry_label,
            normalise_manufacturer(facts.manufacturer, mapping),
            normalise_model(facts.model),
            facts.acquisition_year,
            status in IN_OPERATION_STATUSES,
        )
        rows[key] += count
    return Table(
        rows=tuple(sorted((Row(*key, count) for key, count in rows.items()), key=row_sort_key)),
        not_reported=tuple(
            NotReported(reason, category, quantity)
            for (reason, category), quantity in sorted(not_reported.items())
        ),
        excluded_by_status=tuple(
            Excluded(status, quantity) for status, quantity in sorted(excluded.items())
        ),
        item_count=item_count,
    )


def build_table(items: Iterable[ItemFacts], mapping: Mapping | None = None) -> Table:
    """Return the table of `items`, one fact per item."""
    return build_table_from_groups(((facts, 1) for facts in items), mapping)


def content_hash(rows: Iterable[Row]) -> str:
    """Return the sha256 hex of the compact JSON list of the rows' registry fields, in order."""
    fields = [
        [r.category_code, r.manufacturer, r.model, r.acquisition_year, r.in_operation, r.quantity]
        for r in rows
    ]
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_instant(instant: datetime) -> str:
    """Return an aware instant as ISO-8601 UTC with a `Z` (microseconds only when present)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidPayloadError("as_of must be an aware datetime")
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def row_to_json(row: Row, line: int) -> dict[str, Any]:
    """Return one row as the push payload writes it."""
    return {
        "line": line,
        "category_code": row.category_code,
        "category_label": row.category_label,
        "manufacturer": row.manufacturer,
        "model": row.model,
        "acquisition_year": row.acquisition_year,
        "quantity": row.quantity,
        "in_operation": row.in_operation,
    }


def to_payload(
    table: Table,
    *,
    body_code: str,
    body_name: str,
    body_status: BodyStatus,
    merged_into: str | None,
    registry_version: int,
    as_of: datetime,
    basis: Basis,
    certification: ReadOnlyDict[str, Any] | None,
    mapping_version: str,
) -> dict[str, Any]:
    """Return the JSON-ready body of `PUT /v1/bodies/{body_code}/table` (contract version 1)."""
    if registry_version < 1:
        raise InvalidPayloadError("registry_version starts at 1")
    if (body_status == "merged") != (merged_into is not None):
        raise InvalidPayloadError("merged_into is set exactly when body_status is 'merged'")
    if (basis == "certified") != (certification is not None):
        raise InvalidPayloadError("certification is set exactly when basis is 'certified'")
    return {
        "body_code": body_code,
        "body_name": body_name,
        "body_status": body_status,
        "merged_into": merged_into,
        "registry_version": registry_version,
        "idempotency_key": f"{body_code}:{registry_version}",
        "as_of": format_instant(as_of),
        "basis": basis,
        "certification": dict(certification) if certification is not None else None,
        "mapping_version": mapping_version,
        "rows": [row_to_json(row, line) for line, row in enumerate(table.rows, start=1)],
        "not_reported": [
            {"reason": n.reason, "local_category": n.local_category, "quantity": n.quantity}
            for n in table.not_reported
        ],
        "excluded_by_status": [
            {"status": e.status, "quantity": e.quantity} for e in table.excluded_by_status
        ],
        "content_hash": table.content_hash,
    }


def _field(row: ReadOnlyDict[str, Any], name: str, kind: type, *, nullable: bool = False) -> Any:
    value = row.get(name)
    if value is None and nullable:
        return None
    # bool is an int in Python: a JSON `true` must not pass for a year or a quantity.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidPayloadError(f"row field {name!r}: expected {kind.__name__}, got {value!r}")
    return value


def rows_from_payload(rows_json: Sequence[ReadOnlyDict[str, Any]]) -> tuple[Row, ...]:
    """Return the rows of a payload or a receiver's answer, in the order received."""
    return tuple(
        Row(
            category_code=_field(row, "category_code", str),
            category_label=_field(row, "category_label", str),
            manufacturer=_field(row, "manufacturer", str),
            model=_field(row, "model", str),
            acquisition_year=_field(row, "acquisition_year", int, nullable=True),
            in_operation=_field(row, "in_operation", bool),
            quantity=_field(row, "quantity", int),
        )
        for row in rows_json
    )
