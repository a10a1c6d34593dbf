"""The receiver's rules as pure functions: the content hash, cross-field checks, the outcome.

Why this exists: the contract's rules must be testable without a process or a database, and the
storage layer must apply exactly these rules (it calls `decide`).

Usage::

    errors = check_push(push, path_code="0551010", header_key="0551010:7")   # [] when valid
    outcome = decide(held_version=6, key_applied=False, registry_version=7)  # Outcome.APPLIED

Notes: the hash covers only the registry's table (category, manufacturer, model, year, in operation,
quantity per row, in the contract's order): what a registry without an API would hold. Strings are
compared by Unicode code point (Python's `<`), which is what "sorted" means in the contract.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from registry_receiver.schemas import Basis, BodyStatus, Outcome, Row, TablePush

T = TypeVar("T")
RowKey = tuple[str, str, str, tuple[bool, int], bool]


@dataclass(frozen=True)
class FieldError:
    """One reason a push is refused, naming the field (dotted path) and where it was sent."""

    field: str
    reason: str
    location: str = "body"


def row_sort_key(row: Row) -> RowKey:
    """Return the contract's sort key: code, manufacturer, model, year (null first), in use."""
    year = row.acquisition_year
    return (
        row.category_code,
        row.manufacturer,
        row.model,
        (year is not None, year if year is not None else 0),
        row.in_operation,
    )


def content_hash(rows: Sequence[Row]) -> str:
    """Return the sha256 hex of the canonical JSON of `rows`, in the order given."""
    table = [
        [r.category_code, r.manufacturer, r.model, r.acquisition_year, r.in_operation, r.quantity]
        for r in rows
    ]
    text = json.dumps(table, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_hash(rows: Sequence[Row]) -> str:
    """Return the content hash of `rows` sorted the contract's way (held, maybe altered rows)."""
    return content_hash(sorted(rows, key=row_sort_key))


def idempotency_key(body_code: str, registry_version: int) -> str:
    """Return the key the contract prescribes for one version of one body."""
    return f"{body_code}:{registry_version}"


def decide(*, held_version: int | None, key_applied: bool, registry_version: int) -> Outcome:
    """Return what the receiver does with a valid push, given what it holds."""
    if key_applied:
        return Outcome.DUPLICATE_KEY
    if held_version is not None and registry_version <= held_version:
        return Outcome.STALE_VERSION
    return Outcome.APPLIED


def check_push(push: TablePush, *, path_code: str, header_key: str | None) -> list[FieldError]:
    """Return every cross-field rule `push` breaks (empty when it may be processed)."""
    return [
        *_check_identity(push, path_code=path_code, header_key=header_key),
        *_check_status(push),
        *_check_basis(push),
        *_check_rows(push.rows),
        *_check_sorted_unique(
            "not_reported", push.not_reported, lambda e: (e.reason.value, e.local_category)
        ),
        *_check_sorted_unique(
            "excluded_by_status", push.excluded_by_status, lambda e: e.status.value
        ),
        *_check_hash(push),
    ]


def _check_identity(push: TablePush, *, path_code: str, header_key: str | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if push.body_code != path_code:
        errors.append(
            FieldError("body_code", f"must equal the body code in the path ({path_code})")
        )
    expected = idempotency_key(push.body_code, push.registry_version)
    if push.idempotency_key != expected:
        errors.append(
            FieldError("idempotency_key", f"must be <body_code>:<registry_version> ({expected})")
        )
    if header_key is None:
        errors.append(FieldError("Idempotency-Key", "the header is required", "header"))
    elif header_key != push.idempotency_key:
        errors.append(
            FieldError("idempotency_key", f"must equal the Idempotency-Key header ({header_key})")
        )
    return errors


def _check_status(push: TablePush) -> list[FieldError]:
    if push.body_status is BodyStatus.MERGED and push.merged_into is None:
        return [FieldError("merged_into", "required when body_status is merged")]
    if push.body_status is not BodyStatus.MERGED and push.merged_into is not None:
        return [FieldError("merged_into", "must be null unless body_status is merged")]
    if push.merged_into == push.body_code:
        return [FieldError("merged_into", "a body cannot be merged into itself")]
    return []


def _check_basis(push: TablePush) -> list[FieldError]:
    if push.basis is Basis.CERTIFIED and push.certification is None:
        return [FieldError("certification", "required when basis is certified")]
    if push.basis is Basis.LIVE and push.certification is not None:
        return [FieldError("certification", "must be null when basis is live")]
    return []


def _check_rows(rows: Sequence[Row]) -> list[FieldError]:
    errors = [
        FieldError(f"rows.{index}.line", f"must be {index + 1}: lines number the rows 1..n")
        for index, row in enumerate(rows)
        if row.line != index + 1
    ]
    errors += _check_sorted_unique(
        "rows",
        rows,
        row_sort_key,
        order="(category_code, manufacturer, model, acquisition_year null first, "
        "in_operation false first)",
    )
    return errors


def _check_sorted_unique(
    field: str,
    entries: Sequence[T],
    key: Callable[[T], Any],  # a string or a tuple of comparable parts
    order: str = "the contract's order",
) -> list[FieldError]:
    keys = [key(entry) for entry in entries]
    for index in range(1, len(keys)):
        before, after = keys[index - 1], keys[index]
        if before == after:
            return [FieldError(f"{field}.{index}", f"repeats the group of entry {index - 1}")]
        if after < before:
            return [FieldError(f"{field}.{index}", f"out of order: entries are sorted by {order}")]
    return []


def _check_hash(push: TablePush) -> list[FieldError]:
    expected = content_hash(push.rows)
    if push.content_hash != expected:
        return [FieldError("content_hash", f"does not match the rows (sha256 gives {expected})")]
    return []
