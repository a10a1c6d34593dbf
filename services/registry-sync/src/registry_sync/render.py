"""The registry's tables as CSV and XLSX, with its Greek headers in its order, for people.

Why this exists: a registry without an API still needs the same rows we push, laid out as its form
«Α. Εξοπλισμός» is (Α/Α; Είδος Εξοπλισμού; Κατασκευαστής; Μοντέλο; Έτος Κτήσης; Ποσότητα; Εν
Λειτουργία), and the Ministry exports every body at once (about 15,000), so both formats stream.

Usage::

    chunks = iter_csv(table.rows)                                  # one body
    chunks = iter_bodies_csv((BodyRef(code, name), rows) for …)    # many: code and name first
    write_xlsx(buffer, table.rows)
    write_bodies_xlsx("export.xlsx", bodies)

Notes:
- CSV: text chunks, the first starting with a UTF-8 BOM so Excel reads Greek; comma-separated with
  the csv module's quoting, CRLF line ends. The caller encodes the chunks as UTF-8.
- Α/Α restarts at 1 for every body: it is the line of that body's table, as in the push.
- Unknown year: an empty cell. In operation: ΝΑΙ / ΟΧΙ.
- Free text (manufacturer, model, names) could start with `=`, `+`, `-` or `@`, which a spreadsheet
  runs as a formula; CSV cells get a leading `'` then (OWASP "CSV injection"). XLSX cells are
  written as typed strings, which are never formulas, so their text stays as it is.
- XLSX uses openpyxl's write-only mode: rows go to a temporary file as they come, so memory stays
  flat however many bodies are written.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell
from openpyxl.cell.cell import Cell as OpenpyxlCell
from openpyxl.styles import Font

from registry_sync.table import Row

HEADERS: Final = (
    "Α/Α",
    "Είδος Εξοπλισμού",
    "Κατασκευαστής",
    "Μοντέλο",
    "Έτος Κτήσης",
    "Ποσότητα",
    "Εν Λειτουργία",
)
BODY_HEADERS: Final = ("Κωδικός φορέα", "Φορέας")
YES: Final = "ΝΑΙ"
NO: Final = "ΟΧΙ"
SHEET_TITLE: Final = "Α. Εξοπλισμός"
BOM: Final = "\ufeff"

_COLUMN_WIDTHS: Final = (6, 34, 22, 32, 12, 10, 14)
_BODY_COLUMN_WIDTHS: Final = (14, 48)
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_CHUNK_CHARS: Final = 64 * 1024

Cell = str | int | None
XlsxTarget = str | os.PathLike[str] | IO[bytes]


@dataclass(frozen=True, slots=True)
class BodyRef:
    """Which body a table belongs to, for multi-body exports."""

    body_code: str
    body_name: str


def row_cells(row: Row, line: int) -> list[Cell]:
    """Return one row's cells under HEADERS: numbers as int, unknown year as None."""
    return [
        line,
        row.category_label,
        row.manufacturer,
        row.model,
        row.acquisition_year,
        row.quantity,
        YES if row.in_operation else NO,
    ]


def _records(bodies: Iterable[tuple[BodyRef | None, Iterable[Row]]]) -> Iterator[list[Cell]]:
    for body, rows in bodies:
        prefix: list[Cell] = [] if body is None else [body.body_code, body.body_name]
        for line, row in enumerate(rows, start=1):
            yield prefix + row_cells(row, line)


def _csv_safe(cell: Cell) -> Cell:
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def _iter_csv(headers: tuple[str, ...], records: Iterator[list[Cell]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    yield BOM + buffer.getvalue()  # at once: a download starts before the first body is read
    buffer.seek(0)
    buffer.truncate()
    for record in records:
        writer.writerow([_csv_safe(cell) for cell in record])
        if buffer.tell() >= _CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def iter_csv(rows: Iterable[Row]) -> Iterator[str]:
    """Yield one body's table as CSV text chunks, BOM and Greek headers first."""
    return _iter_csv(HEADERS, _records([(None, rows)]))


def iter_bodies_csv(bodies: Iterable[tuple[BodyRef, Iterable[Row]]]) -> Iterator[str]:
    """Yield many bodies' tables as one CSV, each row led by its body's code and name."""
    return _iter_csv(BODY_HEADERS + HEADERS, _records(bodies))


def _xlsx_cell(sheet: Any, value: Cell, *, bold: bool = False) -> OpenpyxlCell:
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters: not allowed in XML 1.0
    cell = WriteOnlyCell(sheet, value)
    if isinstance(value, str):
        cell.data_type = "s"  # text, even when it starts with "=" or looks like "#N/A"
    if bold:
        cell.font = Font(bold=True)
    return cell


def _write_xlsx(
    target: XlsxTarget,
    headers: tuple[str, ...],
    widths: tuple[int, ...],
    records: Iterator[list[Cell]],
) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=SHEET_TITLE)
    for index, width in enumerate(widths):
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append([_xlsx_cell(sheet, header, bold=True) for header in headers])
    for record in records:
        sheet.append([_xlsx_cell(sheet, cell) for cell in record])
    workbook.save(target)


def write_xlsx(target: XlsxTarget, rows: Iterable[Row]) -> None:
    """Write one body's table as an XLSX workbook to a path or a binary file."""
    _write_xlsx(target, HEADERS, _COLUMN_WIDTHS, _records([(None, rows)]))


def write_bodies_xlsx(target: XlsxTarget, bodies: Iterable[tuple[BodyRef, Iterable[Row]]]) -> None:
    """Write many bodies' tables as one XLSX sheet, each row led by its body's code and name."""
    _write_xlsx(
        target, BODY_HEADERS + HEADERS, _BODY_COLUMN_WIDTHS + _COLUMN_WIDTHS, _records(bodies)
    )
