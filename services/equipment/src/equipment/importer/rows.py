"""Bulk import of a unit's equipment from the CSV or XLSX file a school fills in.

Why this exists: a school starting its inventory, or a directorate handing over a purchase, has a
spreadsheet of tens to thousands of items. Loading it must never stop at the first bad row, must say
what became of every row (created / unchanged / error with the reason and the column), must give
the same inventory when the same file is sent again, and every item it creates must show in its
history which import created it.

Usage::

    rows = read_rows(handle, "xlsx")                          # streamed, one row at a time
    async for checked in validated(rows, unit_id):            # ImportRow or an error RowResult
        ...

The file (stated rules; a row is applied whole or not at all):
- The first non-empty row is the header. Headers are matched accent-, case- and punctuation-blind,
  in Greek as a school writes them or as the API's field names: `Α/Α` (row key), `Κατηγορία`,
  `Κατασκευαστής`, `Μοντέλο`, `Σειριακός αριθμός`, `Αριθμός απογραφής`, `Χώρος`, `Κατάσταση`,
  `Ημερομηνία κτήσης`, `Πρόγραμμα χρηματοδότησης`, `Σύμβαση`, `Κόστος (€)`, `Τιμολόγιο`,
  `Λήξη εγγύησης`, `Παρατηρήσεις` (see `HEADERS` for every accepted spelling). Unknown columns are
  ignored and named in the answer. `Κατηγορία`, `Κατασκευαστής` and `Μοντέλο` are required
  columns; a file without them is refused as a whole.
- CSV: UTF-8 (with or without BOM) or Windows-1253 (what Greek Excel writes), `,` or `;` as the
  separator (whichever the header uses more). XLSX: the first worksheet, read in openpyxl's
  read-only mode (cell values, not formulas).
- Cells are trimmed, inner whitespace collapsed. Dates: `dd/mm/yyyy`, `dd.mm.yyyy`, `dd-mm-yyyy`
  or ISO `yyyy-mm-dd`, or a date cell. Cost in EUR: `1234,50`, `1.234,50`, `1234.50`, `1,234.50`
  or a number cell; a lone `.` followed by exactly three digits (`1.234`) is ambiguous and refused.
  Status: the Greek label (`Σε χρήση`, `Σε αποθήκη`, `Εκτός λειτουργίας`, `Σε επισκευή`, `Προς
  απόσυρση`) or its code; blank means in use. Withdrawn or lost items are not imported.
- Each row's item id is derived, not drawn: UUIDv5 of the unit and the row's identity, which is
  the serial number (with the manufacturer) when given, else the asset number, else the row key
  (`Α/Α`). A row with none of the three is an error. A second row of the file with the same
  identity is an error ("duplicate of line N"). Hence importing the same file again finds every
  item already registered: the row is `unchanged` (a difference from the stored item is noted,
  never applied: corrections are the item's own commands).
- Every event the import appends carries the import id as its causation and correlation id, so an
  item's history names the import (kept with its per-row results in `equipment_imports`).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal
from uuid import UUID, uuid5
from zipfile import BadZipFile

from equipment import domain
from shared.greek import fold

ITEM_ID_NAMESPACE = UUID("6f1c7c1e-6a4e-5b8e-9a53-2d1a0c0f1e55")
MAX_TEXT = 300
ENCODING_PROBE_BYTES = 64 * 1024

FileKind = Literal["csv", "xlsx"]

# Canonical field → every header spelling accepted (compared after `header_key`).
HEADERS: dict[str, tuple[str, ...]] = {
    "row_key": ("Α/Α", "ΑΑ", "Αύξων αριθμός", "row_key", "row"),
    "category": ("Κατηγορία", "Είδος", "category"),
    "manufacturer": ("Κατασκευαστής", "manufacturer"),
    "model": ("Μοντέλο", "model"),
    "serial_number": ("Σειριακός αριθμός", "Σειριακός", "S/N", "serial_number", "serial"),
    "asset_number": ("Αριθμός απογραφής", "Αρ. απογραφής", "asset_number"),
    "location": ("Χώρος", "Θέση", "location"),
    "status": ("Κατάσταση", "status"),
    "acquired_on": ("Ημερομηνία κτήσης", "Ημερομηνία απόκτησης", "acquired_on"),
    "funding_programme": (
        "Πρόγραμμα χρηματοδότησης",
        "Χρηματοδότηση",
        "funding_programme",
    ),
    "contract": ("Σύμβαση", "contract"),
    "cost_eur": ("Κόστος (€)", "Κόστος", "Αξία", "cost_eur", "cost"),
    "invoice": ("Τιμολόγιο", "Αρ. τιμολογίου", "invoice"),
    "warranty_until": ("Λήξη εγγύησης", "Εγγύηση έως", "warranty_until", "warranty_end"),
    "notes": ("Παρατηρήσεις", "notes"),
}
REQUIRED_FIELDS = ("category", "manufacturer", "model")
LABELS = {name: spellings[0] for name, spellings in HEADERS.items()}

STATUS_BY_LABEL = {
    "σε χρηση": "in_use",
    "σε αποθηκη": "in_storage",
    "εκτος λειτουργιας": "out_of_order",
    "σε επισκευη": "under_repair",
    "προς αποσυρση": "for_withdrawal",
}
IMPORTABLE_STATUSES = frozenset(STATUS_BY_LABEL.values())

_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[^\w ]+")
_DMY = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def header_key(text: str) -> str:
    """Return the comparison key of a header: folded, punctuation dropped, spaces collapsed."""
    return _SPACES.sub(" ", _NOT_WORD.sub("", fold(text).replace("/", ""))).strip()


_FIELD_BY_HEADER = {header_key(s): name for name, spellings in HEADERS.items() for s in spellings}


class Outcome(StrEnum):
    """What happened to one row."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    ERROR = "error"


class ImportFormatError(ValueError):
    """The file as a whole cannot be imported (empty, required column missing, unreadable)."""


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row: `line` is its line (CSV) or row number (XLSX); the header is 1."""

    line: int
    outcome: Outcome
    item_id: UUID | None = None
    reason: str | None = None
    field: str | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the row's result as JSON-ready data (no null members)."""
        data: dict[str, Any] = {"line": self.line, "outcome": self.outcome.value}
        if self.item_id is not None:
            data["item_id"] = str(self.item_id)
        if self.reason is not None:
            data["reason"] = self.reason
        if self.field is not None:
            data["field"] = self.field
        if self.notes:
            data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A row that passed the file's own rules; the catalogue and locations are checked on apply."""

    line: int
    item_id: UUID
    identity: str
    category: str
    manufacturer: str
    model: str
    serial_number: str | None = None
    asset_number: str | None = None
    location: str | None = None
    status: str = "in_use"
    acquired_on: date | None = None
    funding_programme: str | None = None
    contract: str | None = None
    cost_eur: Decimal | None = None
    invoice: str | None = None
    warranty_until: date | None = None
    row_key: str | None = None


@dataclass(slots=True)
class ImportSummary:
    """Counts per outcome while results stream out, and the file's ignored columns."""

    counts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    ignored_columns: list[str] = field(default_factory=list)

    def add(self, result: RowResult) -> RowResult:
        """Count `result` and return it."""
        self.counts[result.outcome.value] += 1
        return result

    @property
    def rows(self) -> int:
        """Return how many rows were read."""
        return sum(self.counts.values())

    @property
    def status(self) -> str:
        """Return `completed` (no row failed), `partial` (some did) or `failed` (all did)."""
        errors = self.counts[Outcome.ERROR.value]
        if errors == 0:
            return "completed"
        return "failed" if errors == self.rows else "partial"

    def to_json(self) -> dict[str, Any]:
        """Return the status, the count of every outcome and the total."""
        return {"status": self.status, **self.counts, "rows": self.rows}


# ---------------------------------------------------------------------------------------------
# Reading files one row at a time

SourceRow = tuple[int, dict[str, Any]]


def map_header(cells: Iterable[Any], summary: ImportSummary | None = None) -> list[str | None]:
    """Return each column's canonical field (None: ignored); refuse a header lacking a field."""
    columns: list[str | None] = []
    for cell in cells:
        text = "" if cell is None else str(cell)
        name = _FIELD_BY_HEADER.get(header_key(text)) if text.strip() else None
        if name is not None and name in columns:
            raise ImportFormatError(f"column {LABELS[name]!r} appears twice in the header")
        if name is None and text.strip() and summary is not None:
            summary.ignored_columns.append(text.strip())
        columns.append(name)
    missing = [LABELS[name] for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise ImportFormatError(f"the header lacks required column(s): {', '.join(missing)}")
    return columns


def _is_blank(values: Iterable[Any]) -> bool:
    return all(value is None or (isinstance(value, str) and not value.strip()) for value in values)


def _rows_after_header(
    rows: Iterator[tuple[int, list[Any]]], summary: ImportSummary | None
) -> Iterator[SourceRow]:
    columns: list[str | None] | None = None
    for line, values in rows:
        if _is_blank(values):
            continue
        if columns is None:
            columns = map_header(values, summary)
            continue
        yield (
            line,
            {name: value for name, value in zip(columns, values, strict=False) if name is not None},
        )
    if columns is None:
        raise ImportFormatError("the file is empty: a header row is required")


def sniff_encoding(head: bytes) -> str:
    """Return `utf-8-sig` if the file's first bytes are UTF-8, else `cp1253` (Greek Windows)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of the probe
            return "cp1253"
    return "utf-8-sig"


def read_csv(handle: IO[bytes], summary: ImportSummary | None = None) -> Iterator[SourceRow]:
    """Yield (line, row) for each data row of a CSV file, one record at a time."""
    encoding = sniff_encoding(handle.read(ENCODING_PROBE_BYTES))
    handle.seek(0)
    text = codecs.getreader(encoding)(handle)
    try:
        first = text.readline()
        delimiter = ";" if first.count(";") > first.count(",") else ","

        def lines() -> Iterator[str]:
            yield first
            yield from text

        reader = csv.reader(lines(), delimiter=delimiter)

        def numbered() -> Iterator[tuple[int, list[Any]]]:
            line = 1
            for values in reader:
                yield line, list(values)
                line = reader.line_num + 1

        yield from _rows_after_header(numbered(), summary)
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"the file is not {encoding} text: {exc.reason}") from exc
    except csv.Error as exc:
        raise ImportFormatError(f"the file is not CSV: {exc}") from exc


def read_xlsx(handle: IO[bytes], summary: ImportSummary | None = None) -> Iterator[SourceRow]:
    """Yield (row number, row) for each data row of the first worksheet, streamed (read-only)."""
    from openpyxl import load_workbook  # noqa: PLC0415  (only XLSX imports pay for it)
    from openpyxl.utils.exceptions import InvalidFileException  # noqa: PLC0415

    try:
        workbook = load_workbook(handle, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFormatError(f"the file is not an XLSX workbook: {exc}") from exc
    try:
        sheet = workbook.worksheets[0]
        numbered = (
            (number, list(values))
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        )
        yield from _rows_after_header(numbered, summary)
    finally:
        workbook.close()


def read_rows(
    handle: IO[bytes], kind: FileKind, summary: ImportSummary | None = None
) -> Iterator[SourceRow]:
    """Yield the data rows of a CSV or XLSX file (`kind`), one at a time."""
    return read_xlsx(handle, summary) if kind == "xlsx" else read_csv(handle, summary)


def file_kind(name: str | None, content_type: str | None) -> FileKind:
    """Return the kind of an upload from its content type or its file name (CSV unless XLSX)."""
    if content_type and "spreadsheetml" in content_type:
        return "xlsx"
    if name and Path(name).suffix.lower() == ".xlsx":
        return "xlsx"
    return "csv"


async def as_async(rows: Iterable[SourceRow]) -> AsyncIterator[SourceRow]:
    """Wrap a synchronous row iterator for the async apply loop."""
    for row in rows:
        yield row


# ---------------------------------------------------------------------------------------------
# Validating one row (pure)


class _CellError(Exception):
    """One cell breaks a rule: the row is refused, naming the column."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def clean(value: Any) -> str | None:
    """Return a cell as trimmed text with inner whitespace collapsed, None when blank."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a number cell holding a code (12345.0) means 12345
    text = _SPACES.sub(" ", str(value)).strip()
    return text or None


def normalise_serial(serial: str) -> str:
    """Return the comparison form of a serial number (the domain's, so claims agree)."""
    return domain.normalise_serial(serial) or serial


def _text(values: Mapping[str, Any], name: str) -> str | None:
    value = clean(values.get(name))
    if value is not None and len(value) > MAX_TEXT:
        raise _CellError(name, f"is longer than {MAX_TEXT} characters")
    return value


def _required(values: Mapping[str, Any], name: str) -> str:
    value = _text(values, name)
    if value is None:
        raise _CellError(name, "is required")
    return value


def parse_date(name: str, value: Any) -> date | None:
    """Return a date cell or text (dd/mm/yyyy, dd.mm.yyyy, dd-mm-yyyy, yyyy-mm-dd)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if match := _ISO.fullmatch(text):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := _DMY.fullmatch(text):
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError as exc:
        raise _CellError(name, f"{text!r} is not a date: {exc}") from exc
    raise _CellError(name, f"{text!r} is not a date (write dd/mm/yyyy)")


def parse_cost(value: Any) -> Decimal | None:
    """Return an amount in EUR from a number cell or Greek or English text, to the cent."""
    name = "cost_eur"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        amount = Decimal(str(value))
    else:
        text = str(value).replace("€", "").replace(" ", "").replace("\u00a0", "")
        comma, dot = text.rfind(","), text.rfind(".")
        if comma >= 0 and dot >= 0:
            decimal_mark = "," if comma > dot else "."
            thousands = "." if decimal_mark == "," else ","
            text = text.replace(thousands, "").replace(decimal_mark, ".")
        elif comma >= 0:
            text = text.replace(",", ".")
        elif dot >= 0 and text.count(".") == 1 and len(text) - dot - 1 == 3:  # noqa: PLR2004
            raise _CellError(name, f"{value!r} is ambiguous: write 1234 or 1234,00")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise _CellError(name, f"{value!r} is not an amount in EUR") from exc
    if not amount.is_finite() or amount < 0:
        raise _CellError(name, f"{value!r} is not an amount in EUR")
    return amount.quantize(Decimal("0.01"))


def parse_status(value: Any) -> str:
    """Return the status code of a Greek label or code; blank means in use."""
    text = clean(value)
    if text is None:
        return "in_use"
    key = header_key(text)
    if key in STATUS_BY_LABEL:
        return STATUS_BY_LABEL[key]
    code = text.lower()
    if code in IMPORTABLE_STATUSES:
        return code
    allowed = ", ".join(label for label in STATUS_BY_LABEL)
    raise _CellError("status", f"{text!r} is not an importable status ({allowed})")


def item_id_for(unit_id: str, identity: str) -> UUID:
    """Return the deterministic id of the item a row of `unit_id` with `identity` registers."""
    return uuid5(ITEM_ID_NAMESPACE, f"{unit_id}\x1f{identity}")


def row_identity(manufacturer: str, values: Mapping[str, Any]) -> str:
    """Return what identifies a row's item across imports: serial, else asset number, else Α/Α."""
    if serial := clean(values.get("serial_number")):
        return f"serial:{domain.manufacturer_key(manufacturer)}:{normalise_serial(serial)}"
    if asset := clean(values.get("asset_number")):
        return f"asset:{asset}"
    if key := clean(values.get("row_key")):
        return f"row:{key}"
    raise _CellError(
        "serial_number",
        "a row needs a serial number, an asset number or a row key (Α/Α) to be imported once",
    )


def validate_row(line: int, values: Mapping[str, Any], unit_id: str) -> ImportRow | RowResult:
    """Return the row ready to apply, or its error result (rules in the module docstring)."""
    try:
        manufacturer = _required(values, "manufacturer")
        identity = row_identity(manufacturer, values)
        category = _required(values, "category")
        model = _required(values, "model")
        return ImportRow(
            line=line,
            item_id=item_id_for(unit_id, identity),
            identity=identity,
            category=category,
            manufacturer=manufacturer,
            model=model,
            serial_number=_text(values, "serial_number"),
            asset_number=_text(values, "asset_number"),
            location=_text(values, "location"),
            status=parse_status(values.get("status")),
            acquired_on=parse_date("acquired_on", values.get("acquired_on")),
            funding_programme=_text(values, "funding_programme"),
            contract=_text(values, "contract"),
            cost_eur=parse_cost(values.get("cost_eur")),
            invoice=_text(values, "invoice"),
            warranty_until=parse_date("warranty_until", values.get("warranty_until")),
            row_key=_text(values, "row_key"),
        )
    except _CellError as problem:
        return RowResult(
            line,
            Outcome.ERROR,
            reason=f"{LABELS[problem.name]}: {problem.reason}",
            field=LABELS[problem.name],
        )


async def validated(
    rows: AsyncIterable[SourceRow] | Iterable[SourceRow], unit_id: str
) -> AsyncIterator[ImportRow | RowResult]:
    """Validate rows in file order; a second row with an item's identity is an error row."""
    seen: dict[str, int] = {}
    source = rows if isinstance(rows, AsyncIterable) else as_async(rows)
    async for line, values in source:
        checked = validate_row(line, values, unit_id)
        if isinstance(checked, ImportRow):
            first = seen.setdefault(checked.identity, line)
            if first != line:
                yield RowResult(
                    line,
                    Outcome.ERROR,
                    item_id=checked.item_id,
                    reason=f"duplicate of line {first} (same serial, asset number or Α/Α)",
                    field=LABELS["serial_number"],
                )
                continue
        yield checked
