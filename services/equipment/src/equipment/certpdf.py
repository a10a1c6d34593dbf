"""The PDF of a certified inventory: the unit's details, the exact certified list and its hash.

Why this exists: the unit head signs and files a printable document of what was certified
(βεβαίωση οριστικοποίησης απογραφής). It must render Greek correctly, so it embeds a TrueType font
that has Greek (DejaVu Sans, Debian's `fonts-dejavu-core`, installed by `make install`), and it
prints the content hash, so anyone holding the PDF can check it against the JSON export
(`equipment.certexport`).

Usage::

    pdf: bytes = render_certification_pdf(header, content, unit={"name": "1ο ΓΥΜΝΑΣΙΟ ..."})

Notes: the output is reproducible (reportlab's invariant mode: no creation date or random id in
the file), so rendering the same certification twice gives the same bytes. The items are printed
in the order of the certified content (by item id), numbered; the hash appears in the header and
on every page's footer.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from equipment.certexport import CertificationHeader
from shared.clock import ATHENS

FONT_DIR_ENV = "EQUIPMENT_FONT_DIR"
DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_MONO = "DejaVuSansMono"
_FONT_FILES = {
    FONT: "DejaVuSans.ttf",
    FONT_BOLD: "DejaVuSans-Bold.ttf",
    FONT_MONO: "DejaVuSansMono.ttf",
}

TITLE = "Βεβαίωση οριστικοποίησης απογραφής εξοπλισμού Τ.Π.Ε."
STATUS_LABELS = {
    "in_use": "Σε χρήση",
    "in_storage": "Σε αποθήκη",
    "out_of_order": "Εκτός λειτουργίας",
    "under_repair": "Σε επισκευή",
    "for_withdrawal": "Προς απόσυρση",
    "withdrawn": "Αποσύρθηκε",
    "lost": "Απολέσθηκε",
}
# (content key, column heading, relative width)
COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("asset_number", "Αρ. απογραφής", 1.2),
    ("category", "Κατηγορία", 1.6),
    ("manufacturer", "Κατασκευαστής", 1.4),
    ("model", "Μοντέλο", 1.6),
    ("serial_number", "Σειριακός αριθμός", 1.6),
    ("location", "Χώρος", 1.4),
    ("status", "Κατάσταση", 1.2),
)
UNIT_FIELDS = (
    ("unit_id", "Κωδικός μονάδας"),
    ("name", "Επωνυμία"),
    ("unit_type", "Τύπος"),
    ("municipality", "Δήμος"),
    ("address", "Διεύθυνση"),
)


class FontMissingError(RuntimeError):
    """The TrueType font with Greek is not installed (Debian: fonts-dejavu-core)."""


def font_dir() -> Path:
    """Return where the DejaVu fonts are read from (``EQUIPMENT_FONT_DIR`` overrides it)."""
    return Path(os.environ.get(FONT_DIR_ENV) or DEFAULT_FONT_DIR)


def register_fonts() -> None:
    """Register the DejaVu fonts with reportlab once; raise `FontMissingError` if absent."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, file_name in _FONT_FILES.items():
        if name in registered:
            continue
        path = font_dir() / file_name
        if not path.is_file():
            raise FontMissingError(
                f"{path} is missing: install Debian's fonts-dejavu-core (`make install` does)"
            )
        pdfmetrics.registerFont(TTFont(name, str(path)))


def _styles() -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle("title", fontName=FONT_BOLD, fontSize=14, leading=18),
        "body": ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12),
        "cell": ParagraphStyle("cell", fontName=FONT, fontSize=7.5, leading=9),
        "head": ParagraphStyle("head", fontName=FONT_BOLD, fontSize=7.5, leading=9),
        "hash": ParagraphStyle("hash", fontName=FONT_MONO, fontSize=8.5, leading=11),
    }


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _cell(key: str, item: Mapping[str, Any]) -> str:
    value = item.get(key)
    if key == "status" and isinstance(value, str):
        return escape(STATUS_LABELS.get(value, value))
    return _text(value)


def render_certification_pdf(
    header: CertificationHeader,
    content: Mapping[str, Any],
    *,
    unit: Mapping[str, Any] | None = None,
    signer_name: str | None = None,
) -> bytes:
    """Return the PDF of a certification: unit details, signer, time, hash, the numbered list."""
    register_fonts()
    styles = _styles()
    details = dict(unit or {})
    details.setdefault("unit_id", header.unit_id)
    local = header.certified_at.astimezone(ATHENS)
    story: list[Flowable] = [
        Paragraph(escape(TITLE), styles["title"]),
        Spacer(1, 3 * mm),
    ]
    for key, label in UNIT_FIELDS:
        if details.get(key):
            story.append(Paragraph(f"<b>{label}:</b> {_text(details[key])}", styles["body"]))
    signer = signer_name or header.signer_id
    story += [
        Paragraph(
            f"<b>Οριστικοποιήθηκε:</b> {local:%d/%m/%Y %H:%M} (ώρα Ελλάδας) από {_text(signer)}",
            styles["body"],
        ),
        Paragraph(f"<b>Αριθμός ειδών:</b> {header.item_count}", styles["body"]),
        Paragraph(
            f"<b>Αριθμός βεβαίωσης:</b> {header.certification_id} · <b>θέση ιστορικού:</b>"
            f" {header.covers_position}",
            styles["body"],
        ),
        Paragraph("<b>Αποτύπωμα περιεχομένου (SHA-256):</b>", styles["body"]),
        Paragraph(header.content_hash, styles["hash"]),
        Paragraph(
            "Το αποτύπωμα υπολογίζεται από την εξαγωγή JSON της ίδιας βεβαίωσης"
            " (python -m equipment.certexport verify ΑΡΧΕΙΟ).",
            styles["body"],
        ),
        Spacer(1, 4 * mm),
    ]
    story.append(_items_table(content.get("items", ()), styles))
    buffer = io.BytesIO()
    page = landscape(A4)
    document = SimpleDocTemplate(
        buffer,
        pagesize=page,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=TITLE,
        author=signer,
        subject=f"{header.unit_id} {header.content_hash}",
        invariant=1,
    )

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.drawString(
            12 * mm,
            7 * mm,
            f"Μονάδα {header.unit_id} · {local:%d/%m/%Y} · SHA-256 {header.content_hash}"
            f" · σελίδα {doc.page}",
        )
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _items_table(items: Sequence[Mapping[str, Any]], styles: dict[str, ParagraphStyle]) -> Table:
    total = sum(width for _, _, width in COLUMNS) + 0.5
    usable = landscape(A4)[0] - 24 * mm
    widths = [usable * 0.5 / total] + [usable * width / total for _, _, width in COLUMNS]
    rows: list[list[Paragraph]] = [
        [Paragraph("α/α", styles["head"])]
        + [Paragraph(escape(label), styles["head"]) for _, label, _ in COLUMNS]
    ]
    for number, item in enumerate(items, start=1):
        rows.append(
            [Paragraph(str(number), styles["cell"])]
            + [Paragraph(_cell(key, item), styles["cell"]) for key, _, _ in COLUMNS]
        )
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table
