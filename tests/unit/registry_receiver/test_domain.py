"""The receiver's pure rules: the content hash, the cross-field checks of a push, the outcome."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from registry_receiver.domain import (
    canonical_hash,
    check_push,
    content_hash,
    decide,
    row_sort_key,
)
from registry_receiver.schemas import Outcome, Row, TablePush
from tests.unit.registry_receiver.builders import push, row, spec_hash, two_rows

# The contract document's example (one row of 12 working HP desktops of 2019) and the empty table.
EXAMPLE_HASH = "d260bf7ababe89472f3005af8333f931e331dbc0a8d17d59bcf483e6b6df45b2"
EMPTY_HASH = hashlib.sha256(b"[]").hexdigest()
# registry-sync's golden value (tests/unit/registry_sync/test_table.py): sender, receiver agree.
SENDER_GOLDEN_HASH = "0fde8bd6984f4dd5936635261cddbdfe86a22f648a766cdacd1c8d978c9547d6"


def rows_of(*wire: dict[str, Any]) -> list[Row]:
    return [Row.model_validate(r) for r in wire]


def parse(payload: dict[str, Any]) -> TablePush:
    return TablePush.model_validate(payload, strict=False)


def check(payload: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    """Return (field, location) of each refusal of `payload` sent to its own path with its key."""
    path_code = kwargs.pop("path_code", payload["body_code"])
    header_key = kwargs.pop("header_key", payload["idempotency_key"])
    errors = check_push(parse(payload), path_code=path_code, header_key=header_key)
    return [(e.field, e.location) for e in errors]


# --- content hash -----------------------------------------------------------------------------


def test_content_hash_matches_the_contract_examples() -> None:
    assert content_hash(rows_of(row())) == EXAMPLE_HASH
    assert (
        content_hash([])
        == EMPTY_HASH
        == "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    )


def test_content_hash_agrees_with_the_senders_golden_value_on_greek_text_and_null_year() -> None:
    rows = rows_of(
        row(1),
        row(2, category_code="LAPTOP", category_label="Φορητοί", manufacturer="DELL",
            model="Latitude 3520", acquisition_year=None, in_operation=False, quantity=1),
        row(3, category_code="PRINTER", category_label="Εκτυπωτές", manufacturer="ΕΛΛΗΝΙΚΉ",
            model="Μοντέλο Ά", acquisition_year=2024, quantity=2),
    )  # fmt: skip
    assert content_hash(rows) == SENDER_GOLDEN_HASH


def test_content_hash_ignores_labels_and_line_numbers() -> None:
    assert content_hash(rows_of(row(5, category_label="άλλη ετικέτα"))) == EXAMPLE_HASH


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 11},
        {"in_operation": False},
        {"acquisition_year": None},
        {"acquisition_year": 2020},
        {"manufacturer": "DELL"},
        {"model": "ProDesk 400 G7"},
        {"category_code": "SERVER"},
    ],
)
def test_content_hash_follows_every_table_field(change: dict[str, Any]) -> None:
    assert content_hash(rows_of(row(**change))) != EXAMPLE_HASH


def test_content_hash_is_order_sensitive_but_canonical_hash_sorts_first() -> None:
    ordered = rows_of(*two_rows())
    reversed_rows = list(reversed(ordered))
    assert content_hash(reversed_rows) != content_hash(ordered)
    assert canonical_hash(reversed_rows) == content_hash(ordered) == spec_hash(two_rows())


def test_rows_sort_null_year_first_then_broken_before_working() -> None:
    broken_2019, working_2019, unknown_year = rows_of(
        row(in_operation=False), row(), row(acquisition_year=None)
    )
    shuffled = [working_2019, broken_2019, unknown_year]
    assert sorted(shuffled, key=row_sort_key) == [unknown_year, broken_2019, working_2019]


# --- outcome ----------------------------------------------------------------------------------


def test_first_push_of_a_body_is_applied() -> None:
    assert decide(held_version=None, key_applied=False, registry_version=1) is Outcome.APPLIED


def test_newer_version_is_applied() -> None:
    assert decide(held_version=6, key_applied=False, registry_version=7) is Outcome.APPLIED


@pytest.mark.parametrize("version", [6, 5, 1])
def test_version_at_or_below_the_held_one_is_stale(version: int) -> None:
    assert (
        decide(held_version=6, key_applied=False, registry_version=version) is Outcome.STALE_VERSION
    )


def test_applied_key_is_a_duplicate_whatever_the_version() -> None:
    assert decide(held_version=6, key_applied=True, registry_version=6) is Outcome.DUPLICATE_KEY
    assert decide(held_version=9, key_applied=True, registry_version=6) is Outcome.DUPLICATE_KEY


# --- cross-field checks -----------------------------------------------------------------------


def test_a_valid_push_breaks_no_rule() -> None:
    assert check(push(version=7, rows=two_rows())) == []
    assert check(push(rows=[])) == []


def test_body_code_must_match_the_path() -> None:
    assert check(push(), path_code="0551011") == [("body_code", "body")]


def test_key_must_be_code_colon_version() -> None:
    payload = push(version=7, idempotency_key="0551010:6")
    assert check(payload) == [("idempotency_key", "body")]


def test_key_must_equal_the_header() -> None:
    assert check(push(), header_key="0551010:2") == [("idempotency_key", "body")]


def test_header_is_required() -> None:
    assert check(push(), header_key=None) == [("Idempotency-Key", "header")]


def test_merged_body_names_the_absorbing_body() -> None:
    assert check(push(body_status="merged")) == [("merged_into", "body")]
    assert check(push(body_status="merged", merged_into="0551011")) == []
    assert check(push(body_status="merged", merged_into="0551010")) == [("merged_into", "body")]
    assert check(push(body_status="active", merged_into="0551011")) == [("merged_into", "body")]


def test_certified_basis_carries_its_certification_and_live_none() -> None:
    certification = {
        "certification_id": "c1",
        "certified_at": "2026-12-31T21:59:59Z",
        "content_hash": "0" * 64,
        "item_count": 3,
    }
    assert check(push(basis="certified")) == [("certification", "body")]
    assert check(push(basis="certified", certification=certification)) == []
    assert check(push(basis="live", certification=certification)) == [("certification", "body")]


def test_rows_out_of_order_are_refused_naming_the_row() -> None:
    backwards = [row(1, in_operation=True), row(2, in_operation=False)]
    assert check(push(rows=backwards)) == [("rows.1", "body")]


def test_repeated_group_is_refused() -> None:
    assert check(push(rows=[row(1), row(2, quantity=1)])) == [("rows.1", "body")]


def test_lines_must_number_the_rows_from_one() -> None:
    rows = [row(1, in_operation=False), row(3)]
    assert check(push(rows=rows)) == [("rows.1.line", "body")]


def test_not_reported_must_be_sorted_and_unique() -> None:
    entries = [
        {"reason": "passive_infrastructure", "local_category": "rack", "quantity": 1},
        {"reason": "component_of_bundle", "local_category": "cpu", "quantity": 1},
    ]
    assert check(push(not_reported=entries)) == [("not_reported.1", "body")]
    assert check(push(not_reported=[entries[1], entries[1]])) == [("not_reported.1", "body")]
    assert check(push(not_reported=list(reversed(entries)))) == []


def test_excluded_by_status_must_be_sorted_and_unique() -> None:
    lost, withdrawn = {"status": "lost", "quantity": 1}, {"status": "withdrawn", "quantity": 2}
    assert check(push(excluded_by_status=[withdrawn, lost])) == [("excluded_by_status.1", "body")]
    assert check(push(excluded_by_status=[lost, lost])) == [("excluded_by_status.1", "body")]
    assert check(push(excluded_by_status=[lost, withdrawn])) == []


def test_hash_mismatch_is_refused_naming_content_hash() -> None:
    payload = push(content_hash=spec_hash([row(quantity=13)]))
    assert check(payload) == [("content_hash", "body")]
    reasons = check_push(parse(payload), path_code="0551010", header_key="0551010:1")
    assert EXAMPLE_HASH in reasons[0].reason  # says what the rows hash to
