"""The push's field constraints: strict JSON, closed objects, the contract's patterns and enums."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from registry_receiver.schemas import TablePush
from tests.unit.registry_receiver.builders import push, row


def refused_fields(payload: dict[str, Any]) -> list[str]:
    """Return the dotted paths pydantic names when validating `payload` as JSON (strict)."""
    with pytest.raises(ValidationError) as caught:
        TablePush.model_validate_json(json.dumps(payload))
    return [".".join(str(part) for part in error["loc"]) for error in caught.value.errors()]


def test_a_valid_push_parses_from_json() -> None:
    parsed = TablePush.model_validate_json(json.dumps(push(version=7)))
    assert parsed.registry_version == 7
    assert parsed.rows[0].manufacturer == "HP"
    assert parsed.as_of.utcoffset() is not None


def test_unknown_fields_are_refused_at_every_level() -> None:
    assert refused_fields(push(priority="high")) == ["priority"]
    assert refused_fields(push(rows=[row(serial="X1")])) == ["rows.0.serial"]


def test_missing_field_is_refused() -> None:
    payload = push()
    del payload["mapping_version"]
    assert refused_fields(payload) == ["mapping_version"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"registry_version": "7"}, "registry_version"),  # no coercion from strings
        ({"registry_version": 0}, "registry_version"),
        ({"registry_version": 1.0}, "registry_version"),
        ({"body_code": "-551010"}, "body_code"),  # must start with a letter or digit
        ({"body_code": "0551 010"}, "body_code"),
        ({"body_code": "ΓΥΜ0019"}, "body_code"),  # Latin letters only
        ({"body_code": "0" * 33}, "body_code"),
        ({"merged_into": "0551010 "}, "merged_into"),
        ({"body_status": "closed"}, "body_status"),
        ({"basis": "estimated"}, "basis"),
        ({"content_hash": "D260BF7ABABE89472F3005AF8333F931E331DBC0A8D17D59BCF483E6B6DF45B2"},
         "content_hash"),  # upper-case hex
        ({"content_hash": "d260bf"}, "content_hash"),
        ({"as_of": "2026-11-30T01:00:00"}, "as_of"),  # naive
        ({"as_of": "2026-11-30T03:00:00+02:00"}, "as_of"),  # aware but not UTC
        ({"mapping_version": ""}, "mapping_version"),
    ],
)  # fmt: skip
def test_push_field_constraints(change: dict[str, Any], field: str) -> None:
    assert refused_fields(push(**change)) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "rows.0.quantity"),
        ({"line": 0}, "rows.0.line"),
        ({"in_operation": 1}, "rows.0.in_operation"),  # no coercion to booleans
        ({"acquisition_year": "2019"}, "rows.0.acquisition_year"),
        ({"manufacturer": ""}, "rows.0.manufacturer"),
        ({"category_code": "desktop"}, "rows.0.category_code"),
    ],
)
def test_row_field_constraints(change: dict[str, Any], field: str) -> None:
    assert refused_fields(push(rows=[row(**change)])) == [field]


def test_unknown_year_is_null() -> None:
    parsed = TablePush.model_validate_json(json.dumps(push(rows=[row(acquisition_year=None)])))
    assert parsed.rows[0].acquisition_year is None


def test_not_reported_reasons_and_excluded_statuses_are_closed_lists() -> None:
    odd_reason = [{"reason": "broken", "local_category": "cpu", "quantity": 1}]
    assert refused_fields(push(not_reported=odd_reason)) == ["not_reported.0.reason"]
    odd_status = [{"status": "disposed", "quantity": 1}]
    assert refused_fields(push(excluded_by_status=odd_status)) == ["excluded_by_status.0.status"]
    zero = [{"status": "lost", "quantity": 0}]
    assert refused_fields(push(excluded_by_status=zero)) == ["excluded_by_status.0.quantity"]


def test_certification_is_validated_when_present() -> None:
    certification = {
        "certification_id": "c1",
        "certified_at": "2026-12-31T21:59:59Z",
        "content_hash": "x" * 64,
        "item_count": -1,
    }
    assert refused_fields(push(basis="certified", certification=certification)) == [
        "certification.content_hash",
        "certification.item_count",
    ]
