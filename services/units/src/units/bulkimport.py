"""Bulk import of units from CSV: every row validated, applied through the service's own handlers,
and answered with its own outcome.

Why this exists: the national list of units (15,053 rows) and every later list a directorate
sends arrive as CSV. Loading them must never stop at the first bad row, never leave a row half
applied, report each row (created / unchanged / updated / error with the reason and the field), and
give the same tree when run again. Each row becomes one `RegisterUnit` or `ChangeUnitDetails`
command run by `units.handlers`, so the import obeys exactly the rules the API obeys, and one
command is one append: a row is applied whole or not at all.

Usage::

    rules = ImportRules(known_unit_types=known_names(types), default_parent=HOLDING_NODE)
    async for result in import_units(read_csv_rows(path), store=store, clock=clock,
                                     context=context, rules=rules):
        print(result.line, result.outcome, result.reason)

Stated rules (the file is validated row by row; the first column named is the offending field):
- Columns: `registry_code`, `name` and `unit_type` are required in the header. Optional:
  `parent_code`, `directorate_code`, `mm_id`, `operation_shift`, `municipality`, `address`,
  `postal_code`, `legal_character`; any other column (e.g. `source_row_id`) is ignored. Every value
  is trimmed and inner runs of whitespace become one space.
- `registry_code` must pass the service's code rule (`units.domain.validate_code`): 7 digits, or
  one of the other shapes it states (SEK workshop centres, 8-digit schools abroad, directorate
  codes). Anything else is an error row, never silently dropped. A code seen earlier in the same
  file is an error row ("duplicate of line N"); the first occurrence counts.
- `name` and `unit_type` must not be empty. A unit type outside the 36 reference types is accepted
  as written (the national list spells types its own way) and the row carries a note saying so.
- The parent is, in order: the caller's fixed placement for that code (the seed places regions and
  directorates), `parent_code`, `directorate_code`, the caller's default parent (the seed's holding
  node). No parent at all is an error row. A parent that does not exist is an error row (the
  handler's ParentNotFound).
- `mm_id`: digits only. `postal_code`: 5 digits (a space inside is dropped). `operation_shift`:
  ΗΜΕΡΗΣΙΟ, ΕΣΠΕΡΙΝΟ or ΟΛΟΗΜΕΡΟ (accents and case ignored). Anything else is an error row: a
  row is applied whole or not at all, never with the bad cell dropped.
- Private schools are accepted. `legal_character` is ΔΗΜΟΣΙΟ or ΙΔΙΩΤΙΚΟ; when the column is
  absent or blank it is ΙΔΙΩΤΙΚΟ if the name or type contains ΙΔΙΩΤΙΚ (accent- and case-blind),
  noted on the row, and otherwise left unset (the file does not say). ΔΗΜΟΣΙΟ given for a name
  that says ΙΔΙΩΤΙΚ is an error row.
- A unit that exists already: the row's non-blank details are compared with the unit's; if none
  differs the row is `unchanged`, otherwise one `ChangeUnitDetails` with the differing fields makes
  it `updated`. A blank cell never clears a stored value, and an import never re-parents an
  existing unit (placement is an administrative act: the re-parent command); a different parent
  in the file is noted on the row. Hence a re-run of the same file reports every row unchanged.

Notes: rows are read one at a time (`read_csv_rows` from a file, `read_csv_stream` from HTTP body
chunks), so memory does not grow with the file; only the set of codes seen so far is kept, to
report duplicates.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from shared.clock import Clock
from shared.eventstore import AppendContext, EventStore, VersionConflictError
from shared.greek import fold
from units import domain, handlers
from units.commands import ChangeUnitDetails, RegisterUnit

REQUIRED_COLUMNS = ("registry_code", "name", "unit_type")
OPTIONAL_COLUMNS = (
    "parent_code",
    "directorate_code",
    "mm_id",
    "operation_shift",
    "municipality",
    "address",
    "postal_code",
    "legal_character",
)
# The details an import may set; compared with a stored unit's attributes of the same name.
DETAIL_FIELDS = (
    "name",
    "unit_type",
    "mm_id",
    "municipality",
    "address",
    "postal_code",
    "operation_shift",
    "legal_character",
)
OPERATION_SHIFTS = ("ΗΜΕΡΗΣΙΟ", "ΕΣΠΕΡΙΝΟ", "ΟΛΟΗΜΕΡΟ")
PUBLIC = "ΔΗΜΟΣΙΟ"
PRIVATE = "ΙΔΙΩΤΙΚΟ"
PRIVATE_MARK = "ιδιωτικ"  # folded ΙΔΙΩΤΙΚ-: ΙΔΙΩΤΙΚΟ, Ιδιωτική, ΙΔΙΩΤΙΚΟΥ, ...
MAX_NAME_LENGTH = 300
MAX_MM_ID_DIGITS = 12

_SPACES = re.compile(r"\s+")
_POSTAL_CODE = re.compile(r"[0-9]{5}")


class Outcome(StrEnum):
    """What happened to one row."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    ERROR = "error"


class ImportFormatError(ValueError):
    """The file as a whole cannot be imported (no header, a required column missing, not UTF-8)."""


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row: `line` is the row's first line in the file (the header is 1)."""

    line: int
    registry_code: str
    outcome: Outcome
    reason: str | None = None
    field: str | None = None
    notes: tuple[str, ...] = ()
    parent_code: str | None = None  # where the unit hangs (set when the row was applied)

    def to_json(self) -> dict[str, Any]:
        """Return the row's result as JSON-ready data (no null members)."""
        data: dict[str, Any] = {
            "line": self.line,
            "registry_code": self.registry_code,
            "outcome": self.outcome.value,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.field is not None:
            data["field"] = self.field
        if self.notes:
            data["notes"] = list(self.notes)
        if self.parent_code is not None:
            data["parent_code"] = self.parent_code
        return data


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A row that passed validation: what the import will register or compare."""

    line: int
    registry_code: str
    parent_code: str
    name: str
    unit_type: str
    mm_id: str | None = None
    municipality: str | None = None
    address: str | None = None
    postal_code: str | None = None
    operation_shift: str | None = None
    legal_character: str | None = None
    notes: tuple[str, ...] = ()

    def details(self) -> dict[str, str]:
        """Return the details the row gives (blank cells left out)."""
        values = {name: getattr(self, name) for name in DETAIL_FIELDS}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ImportRules:
    """What a row is checked against, and where a unit without a stated parent goes."""

    known_unit_types: frozenset[str] = frozenset()  # folded names; empty: no check
    default_parent: str | None = None
    placement: Mapping[str, str] = field(default_factory=dict)  # code → fixed parent


@dataclass(slots=True)
class ImportSummary:
    """Counts per outcome, kept while results stream out."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, result: RowResult) -> RowResult:
        """Count `result` and return it."""
        self.counts[result.outcome.value] += 1
        return result

    @property
    def rows(self) -> int:
        """Return how many rows were read."""
        return sum(self.counts.values())

    def to_json(self) -> dict[str, int]:
        """Return the count of every outcome (zeros included) and the total."""
        return {**{o.value: self.counts[o.value] for o in Outcome}, "rows": self.rows}


# ---------------------------------------------------------------------------------------------
# Reading CSV one row at a time


SourceRow = tuple[int, Mapping[str, str | None]]


def _check_header(header: Iterable[str] | None) -> list[str]:
    if header is None:
        raise ImportFormatError("the file is empty: a header row is required")
    columns = [column.strip() for column in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise ImportFormatError(f"the header lacks required column(s): {', '.join(missing)}")
    return columns


def read_csv_rows(path: Path, *, limit: int | None = None) -> Iterator[SourceRow]:
    """Yield (line, row) for each data row of a UTF-8 CSV file, reading one record at a time."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from _rows_of(csv.reader(handle), limit=limit)


def _rows_of(reader: Any, *, limit: int | None) -> Iterator[SourceRow]:
    columns = _check_header(next(reader, None))
    line = reader.line_num + 1
    for count, values in enumerate(reader):
        if limit is not None and count >= limit:
            return
        if values:  # a blank line is no row
            yield line, dict(zip(columns, values, strict=False))
        line = reader.line_num + 1


async def read_csv_stream(
    chunks: AsyncIterable[bytes], *, limit: int | None = None
) -> AsyncIterator[SourceRow]:
    """Yield (line, row) from a CSV body arriving in byte chunks (UTF-8), one record at a time.

    A record ends at a line break outside quotes: RFC 4180 doubles quotes inside a quoted field, so
    the quotes of a complete record are even in number.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    record: list[str] = []
    quotes = 0
    line = 0
    start = 1
    columns: list[str] | None = None
    emitted = 0

    def parse(text: str) -> list[str]:
        return next(csv.reader([text]), [])

    async for chunk in _decoded(chunks, decoder):
        pending += chunk
        *complete, pending = pending.split("\n")
        for piece in complete:
            line += 1
            record.append(piece)
            quotes += piece.count('"')
            if quotes % 2:
                continue  # a quoted field runs on to the next line
            text = "\n".join(record).removesuffix("\r")
            record, quotes = [], 0
            if columns is None:
                columns = _check_header(parse(text))
            elif text:
                if limit is not None and emitted >= limit:
                    return
                emitted += 1
                yield start, dict(zip(columns, parse(text), strict=False))
            start = line + 1
    tail = "\n".join([*record, pending]) if record else pending
    if columns is None:
        _check_header(parse(tail) if tail else None)
    elif tail.strip() and (limit is None or emitted < limit):
        yield start, dict(zip(columns, parse(tail), strict=False))


async def _decoded(
    chunks: AsyncIterable[bytes], decoder: codecs.IncrementalDecoder
) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"the file is not UTF-8: {exc.reason}") from exc


# ---------------------------------------------------------------------------------------------
# Validating one row (pure)


def clean(value: str | None) -> str | None:
    """Return `value` trimmed with inner whitespace collapsed, or None when blank."""
    if value is None:
        return None
    cleaned = _SPACES.sub(" ", value).strip()
    return cleaned or None


def is_private(name: str, unit_type: str) -> bool:
    """Return whether the name or type says the unit is private (ΙΔΙΩΤΙΚ-, accent/case-blind)."""
    return PRIVATE_MARK in fold(name) or PRIVATE_MARK in fold(unit_type)


def _code_problem(code: str) -> str | None:
    try:
        domain.validate_code(code)
    except domain.InvalidUnitCodeError as exc:
        return str(exc)
    return None


def _error(line: int, code: str, column: str, reason: str) -> RowResult:
    return RowResult(line, code, Outcome.ERROR, reason=f"{column}: {reason}", field=column)


class _CellError(Exception):
    """One cell breaks a rule: the row is refused, naming the column."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def _required(values: Mapping[str, str | None], column: str) -> str:
    value = values.get(column)
    if not value:
        raise _CellError(column, "is required")
    return value


def _checked_code(column: str, code: str) -> str:
    if problem := _code_problem(code):
        raise _CellError(column, problem)
    return code


def _mm_id(value: str | None) -> str | None:
    if value is not None and not (value.isascii() and value.isdigit()):
        raise _CellError("mm_id", f"{value!r} is not a number")
    if value is not None and len(value) > MAX_MM_ID_DIGITS:
        raise _CellError("mm_id", f"{value!r} has more than {MAX_MM_ID_DIGITS} digits")
    return value


def _postal_code(value: str | None) -> str | None:
    if value is None:
        return None
    compact = value.replace(" ", "")
    if not _POSTAL_CODE.fullmatch(compact):
        raise _CellError("postal_code", f"{compact!r} is not 5 digits")
    return compact


def _one_of(column: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """Return the allowed spelling of `value` (accent- and case-blind), None if blank."""
    if value is None:
        return None
    by_fold = {fold(option): option for option in allowed}
    if fold(value) not in by_fold:
        raise _CellError(column, f"{value!r} is not one of {', '.join(allowed)}")
    return by_fold[fold(value)]


def _legal_character(value: str | None, name: str, unit_type: str, notes: list[str]) -> str | None:
    legal = _one_of("legal_character", value, (PUBLIC, PRIVATE))
    private = is_private(name, unit_type)
    if legal == PUBLIC and private:
        raise _CellError("legal_character", f"{PUBLIC}, but the name says the unit is private")
    if legal is None and private:
        notes.append(f"private school: the name contains ΙΔΙΩΤΙΚ, legal character {PRIVATE}")
        return PRIVATE
    return legal


def validate_row(
    line: int, raw: Mapping[str, str | None], rules: ImportRules
) -> ImportRow | RowResult:
    """Return the row ready to apply, or its error result; checks the stated rules above."""
    values = {key: clean(value) for key, value in raw.items() if key}
    code = values.get("registry_code") or ""
    try:
        _checked_code("registry_code", _required(values, "registry_code"))
        name = _required(values, "name")
        if len(name) > MAX_NAME_LENGTH:
            raise _CellError("name", f"is longer than {MAX_NAME_LENGTH} characters")
        unit_type = _required(values, "unit_type")
        notes: list[str] = []
        if rules.known_unit_types and fold(unit_type) not in rules.known_unit_types:
            notes.append(f"unit type {unit_type!r} is not in the reference list; kept as written")
        parent_column, parent = _parent_of(code, values, rules)
        if parent is None:
            raise _CellError(parent_column, "no parent: give parent_code or directorate_code")
        if parent == code:
            raise _CellError(parent_column, "a unit cannot be its own parent")
        _checked_code(parent_column, parent)
        return ImportRow(
            line=line,
            registry_code=code,
            parent_code=parent,
            name=name,
            unit_type=unit_type,
            mm_id=_mm_id(values.get("mm_id")),
            municipality=values.get("municipality"),
            address=values.get("address"),
            postal_code=_postal_code(values.get("postal_code")),
            operation_shift=_one_of(
                "operation_shift", values.get("operation_shift"), OPERATION_SHIFTS
            ),
            legal_character=_legal_character(values.get("legal_character"), name, unit_type, notes),
            notes=tuple(notes),
        )
    except _CellError as problem:
        return _error(line, code, problem.column, problem.reason)


def _parent_of(
    code: str, values: Mapping[str, str | None], rules: ImportRules
) -> tuple[str, str | None]:
    if code in rules.placement:
        return "parent_code", rules.placement[code]
    for column in ("parent_code", "directorate_code"):
        if value := values.get(column):
            return column, value
    return "parent_code", rules.default_parent


def changed_details(unit: Any, row: ImportRow) -> dict[str, str]:
    """Return the row's details that differ from the stored unit's (blank cells never count)."""
    return {
        name: value
        for name, value in row.details().items()
        if (getattr(unit, name, None) or None) != value
    }


# ---------------------------------------------------------------------------------------------
# Applying rows through the handlers


# What a command may answer for one row without the import as a whole being wrong.
ROW_ERRORS: tuple[type[Exception], ...] = (domain.UnitsDomainError, VersionConflictError)


async def _as_async(
    rows: Iterable[SourceRow] | AsyncIterable[SourceRow],
) -> AsyncIterator[SourceRow]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def import_units(
    rows: Iterable[SourceRow] | AsyncIterable[SourceRow],
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    rules: ImportRules,
    summary: ImportSummary | None = None,
    accept: Callable[[str], bool] | None = None,
) -> AsyncIterator[RowResult]:
    """Validate and apply each row in file order; yield one result per row.

    `accept(code)`, when given, skips rows whose code it refuses (the seed imports the tree level by
    level); `summary`, when given, counts every result.
    """
    tally = summary if summary is not None else ImportSummary()
    seen: dict[str, int] = {}
    async for line, raw in _as_async(rows):
        code = clean(raw.get("registry_code")) or ""
        if accept is not None and not accept(code):
            continue
        if code and code in seen:
            reason = f"duplicate of line {seen[code]}; only the first is imported"
            yield tally.add(_error(line, code, "registry_code", reason))
            continue
        if code:
            seen[code] = line
        checked = validate_row(line, raw, rules)
        if isinstance(checked, RowResult):
            yield tally.add(checked)
            continue
        yield tally.add(await apply_row(checked, store=store, clock=clock, context=context))


async def apply_row(
    row: ImportRow, *, store: EventStore, clock: Clock, context: AppendContext
) -> RowResult:
    """Register the row's unit, or bring its details up to date; one command, one append."""
    existing = await handlers.load_unit(store, row.registry_code)
    try:
        if existing is None:
            try:
                await handlers.register_unit(
                    RegisterUnit(
                        unit_id=row.registry_code,
                        parent_id=row.parent_code,
                        name=row.name,
                        unit_type=row.unit_type,
                        registered_on=clock.today(),
                        mm_id=row.mm_id,
                        municipality=row.municipality,
                        address=row.address,
                        postal_code=row.postal_code,
                        operation_shift=row.operation_shift,
                        legal_character=row.legal_character,
                    ),
                    store=store,
                    clock=clock,
                    context=context,
                )
            except domain.UnitAlreadyRegisteredError:
                # Registered since we looked (another import at the same time): compare instead.
                existing = await handlers.load_unit(store, row.registry_code)
            else:
                return RowResult(
                    row.line,
                    row.registry_code,
                    Outcome.CREATED,
                    notes=row.notes,
                    parent_code=row.parent_code,
                )
        notes = list(row.notes)
        parent = getattr(existing, "parent_id", None)
        outcome = partial(RowResult, row.line, row.registry_code, parent_code=parent)
        if parent != row.parent_code:
            notes.append(
                f"stays under {parent}; the file places it under {row.parent_code}"
                " (an import never re-parents: use the re-parent command)"
            )
        changes = changed_details(existing, row)
        if not changes:
            return outcome(Outcome.UNCHANGED, notes=tuple(notes))
        await handlers.change_unit_details(
            ChangeUnitDetails(unit_id=row.registry_code, changed_on=clock.today(), **changes),
            store=store,
            clock=clock,
            context=context,
        )
        notes.append("changed: " + ", ".join(sorted(changes)))
        return outcome(Outcome.UPDATED, notes=tuple(notes))
    except ROW_ERRORS as exc:
        return RowResult(
            row.line, row.registry_code, Outcome.ERROR, reason=_reason(exc), notes=row.notes
        )


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
