"""The JSON export of a certification, and the rule by which anyone recomputes its content hash.

Why this exists: a certification (οριστικοποίηση) binds to the exact list of items it covers through
a content hash recorded in its `InventoryCertified` event and printed on its PDF. The export holds
that list in canonical form, so an auditor, a directorate or the school itself can check offline,
without our code or database, that the list they hold is the one that was certified.

The hashing rule (stated once here; `content_hash` implements it and nothing else does):

1. The hashed object is the export's ``content`` member: ``{"format": "ictc-certification/1",
   "unit_id": <unit code>, "items": [<item>, ...]}``, the items sorted by ``item_id`` (the
   item's UUID in lower-case text), each item an object of JSON strings, integers, booleans and
   nulls only (amounts in EUR are decimal strings such as ``"1234.50"``, dates ``YYYY-MM-DD``).
2. It is spelled as canonical JSON, exactly as ``shared.hashchain.canonical_json`` does and as
   Python writes it with ``json.dumps(content, sort_keys=True, separators=(",", ":"),
   ensure_ascii=False)``: keys sorted by code point at every level, no whitespace, non-ASCII
   characters as themselves (not ``\\u`` escapes), then encoded as UTF-8.
3. ``content_hash`` is the lower-case hex SHA-256 of those bytes.

Each item carries its stream's ``version`` and the ``hash`` of that version in the item's own hash
chain (``shared.hashchain``), so the certified list is also tied to the tamper-evident history: an
auditor holding the item's event export can check that the certified state is the one its chain
reached.

Usage::

    python -m equipment.certexport verify certification-<id>.json     # exit 0 when it holds

    content = certified_content(unit_id, entries)
    digest = content_hash(content)

Notes: the export adds, outside ``content`` and so outside the hash, who signed, when, the position
of the event log the list reflects, and the unit's details as known when it was certified.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from shared.events.envelope import format_time
from shared.hashchain import canonical_json

CONTENT_FORMAT = "ictc-certification/1"
EXPORT_FORMAT = "ictc-certification-export/1"
HASH_RULE = (
    "sha256 (lower-case hex) of the UTF-8 bytes of `content` written as canonical JSON:"
    ' json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False);'
    " items sorted by item_id"
)

JsonScalar = str | int | bool | None


def certified_content(unit_id: str, items: Iterable[Mapping[str, JsonScalar]]) -> dict[str, Any]:
    """Return the hashed object for `items` of `unit_id`: items sorted by their `item_id`."""
    entries = [dict(item) for item in items]
    for entry in entries:
        for name, value in entry.items():
            if not (value is None or isinstance(value, str | int | bool)):
                raise TypeError(f"item field {name!r} is {type(value).__name__}, not a JSON scalar")
    entries.sort(key=lambda entry: str(entry["item_id"]))
    return {"format": CONTENT_FORMAT, "unit_id": unit_id, "items": entries}


def content_hash(content: Mapping[str, Any]) -> str:
    """Return the content hash of a certification's `content` (the rule in the module docstring)."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


@dataclass(frozen=True, slots=True)
class CertificationHeader:
    """What a certification records beside its list: who, when, how many, which log position."""

    certification_id: UUID
    unit_id: str
    certified_at: datetime
    certified_on: date
    signer_id: str
    item_count: int
    content_hash: str
    covers_position: int

    def to_json(self) -> dict[str, Any]:
        """Return the header as JSON-ready data."""
        return {
            "certification_id": str(self.certification_id),
            "unit_id": self.unit_id,
            "certified_at": format_time(self.certified_at),
            "certified_on": self.certified_on.isoformat(),
            "signer_id": self.signer_id,
            "item_count": self.item_count,
            "content_hash": self.content_hash,
            "covers_position": self.covers_position,
        }


def export_document(
    header: CertificationHeader,
    content: Mapping[str, Any],
    *,
    unit: Mapping[str, JsonScalar] | None = None,
) -> dict[str, Any]:
    """Return the export of one certification: its header, the hash rule, the unit, the content."""
    return {
        "format": EXPORT_FORMAT,
        "hash_rule": HASH_RULE,
        "certification": header.to_json(),
        "unit": dict(unit or {"unit_id": header.unit_id}),
        "content": dict(content),
    }


def export_text(document: Mapping[str, Any]) -> str:
    """Return the export as indented JSON text (the hash never depends on this spelling)."""
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def verify_export(document: Mapping[str, Any]) -> list[str]:
    """Check an export offline; return what does not hold (an empty list means it verifies)."""
    problems: list[str] = []
    try:
        certification = document["certification"]
        content = document["content"]
        recorded = str(certification["content_hash"])
        items: Sequence[Mapping[str, Any]] = content["items"]
    except (KeyError, TypeError) as exc:
        return [f"not a certification export: missing {exc}"]
    if content.get("format") != CONTENT_FORMAT:
        problems.append(f"content format {content.get('format')!r} is not {CONTENT_FORMAT!r}")
    if content.get("unit_id") != certification.get("unit_id"):
        problems.append("content unit_id differs from the certification's unit_id")
    if certification.get("item_count") != len(items):
        problems.append(
            f"item_count {certification.get('item_count')} but the content lists {len(items)}"
        )
    ids = [str(item.get("item_id")) for item in items]
    if ids != sorted(ids):
        problems.append("items are not sorted by item_id")
    if len(set(ids)) != len(ids):
        problems.append("an item_id is listed twice")
    recomputed = content_hash(content)
    if recomputed != recorded:
        problems.append(f"content hash {recomputed} differs from the recorded {recorded}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """`verify FILE`: recompute the content hash of an export; print OK or what fails."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "verify":  # noqa: PLR2004  (the command and its one file)
        sys.stderr.write("usage: python -m equipment.certexport verify EXPORT.json\n")
        return 2
    try:
        document = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        sys.stderr.write(f"cannot read {args[1]}: {exc}\n")
        return 2
    if not isinstance(document, dict):
        sys.stdout.write("FAIL: not a certification export (not a JSON object)\n")
        return 1
    problems = verify_export(document)
    for problem in problems:
        sys.stdout.write(f"FAIL: {problem}\n")
    if not problems:
        header = document["certification"]
        sys.stdout.write(
            f"OK: {header['item_count']} items of unit {header['unit_id']}, content hash"
            f" {header['content_hash']} recomputed\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
