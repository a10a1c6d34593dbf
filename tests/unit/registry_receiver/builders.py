"""Wire-form pushes for the receiver's tests, hashed by an independent copy of the formula.

The hash here is written from the contract's text, not imported from the receiver, so a receiver
whose hash drifted from the contract fails the tests instead of agreeing with itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DESKTOP = "Επιτραπέζιοι υπολογιστές"


def spec_hash(rows: list[dict[str, Any]]) -> str:
    """Return the contract's content_hash of wire-form rows, in the order given."""
    fields = [
        "category_code",
        "manufacturer",
        "model",
        "acquisition_year",
        "in_operation",
        "quantity",
    ]
    table = [[row[name] for name in fields] for row in rows]
    text = json.dumps(table, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def row(line: int = 1, **overrides: Any) -> dict[str, Any]:
    """Return one valid row (a dozen working HP desktops of 2019 unless overridden)."""
    values: dict[str, Any] = {
        "line": line,
        "category_code": "DESKTOP",
        "category_label": DESKTOP,
        "manufacturer": "HP",
        "model": "ProDesk 400 G6",
        "acquisition_year": 2019,
        "quantity": 12,
        "in_operation": True,
    }
    return values | overrides


def two_rows() -> list[dict[str, Any]]:
    """Return two rows in the contract's order: one broken, one working, same model and year."""
    return [row(1, in_operation=False, quantity=1), row(2, in_operation=True, quantity=11)]


def push(
    body_code: str = "0551010",
    version: int = 1,
    rows: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Return a valid push (key and hash consistent) with `overrides` applied last."""
    table = [row()] if rows is None else rows
    values: dict[str, Any] = {
        "body_code": body_code,
        "body_name": "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
        "body_status": "active",
        "merged_into": None,
        "registry_version": version,
        "idempotency_key": f"{body_code}:{version}",
        "as_of": "2026-11-30T01:00:00Z",
        "basis": "live",
        "certification": None,
        "mapping_version": "2026.1",
        "rows": table,
        "not_reported": [
            {"reason": "component_of_bundle", "local_category": "cpu", "quantity": 12}
        ],
        "excluded_by_status": [{"status": "withdrawn", "quantity": 3}],
        "content_hash": spec_hash(table),
    }
    return values | overrides


def key_header(payload: dict[str, Any]) -> dict[str, str]:
    """Return the Idempotency-Key header matching `payload`."""
    return {"Idempotency-Key": str(payload["idempotency_key"])}
