"""The receiver's rules on its SQLite storage: applied, stale, duplicate, listing, tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from registry_receiver.schemas import Outcome, Row, TablePush
from registry_receiver.store import Store
from tests.unit.registry_receiver.builders import push, row, spec_hash, two_rows

RECEIVED_AT = datetime(2026, 11, 30, 1, 0, 5, tzinfo=UTC)


def parsed(payload: dict[str, Any]) -> TablePush:
    return TablePush.model_validate(payload, strict=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "receiver.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store.open(db_path, clock=lambda: RECEIVED_AT)
    yield opened
    opened.close()


def test_storage_is_durable_wal(store: Store, db_path: Path) -> None:
    assert db_path.exists()  # parent folders created
    with sqlite3.connect(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_first_push_is_applied_and_held(store: Store) -> None:
    answer = store.push(parsed(push(version=3, rows=two_rows())))
    assert (answer.outcome, answer.held_version) == (Outcome.APPLIED, 3)
    assert answer.content_hash == spec_hash(two_rows())
    held = store.body("0551010")
    assert held is not None
    assert held.registry_version == 3
    assert [r.model_dump() for r in held.rows] == two_rows()
    assert held.received_at == RECEIVED_AT
    assert held.as_of == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert store.stats().applied_per_key == {"0551010:3": 1}


def test_newer_version_replaces_the_table(store: Store) -> None:
    store.push(parsed(push(version=1)))
    answer = store.push(parsed(push(version=2, rows=[])))
    assert (answer.outcome, answer.held_version) == (Outcome.APPLIED, 2)
    held = store.body("0551010")
    assert held is not None
    assert (held.registry_version, held.rows) == (2, [])


def test_older_or_equal_version_is_stale_and_changes_nothing(store: Store) -> None:
    store.push(parsed(push(version=5, rows=two_rows())))
    before = store.body("0551010")
    for version in (4, 5):
        stale = push(version=version, rows=[], idempotency_key=f"0551010:{version}x")
        answer = store.push(parsed(stale))
        assert (answer.outcome, answer.held_version) == (Outcome.STALE_VERSION, 5)
        assert answer.content_hash == spec_hash(two_rows())  # the held table's
    assert store.body("0551010") == before
    stats = store.stats()
    assert (stats.pushes_applied, stats.applied_per_key) == (1, {"0551010:5": 1})


def test_repeated_key_is_a_duplicate_and_changes_nothing(store: Store) -> None:
    store.push(parsed(push(version=1)))
    store.push(parsed(push(version=2)))
    before = store.body("0551010")
    answer = store.push(parsed(push(version=2, rows=[])))  # same key, other content
    assert (answer.outcome, answer.held_version) == (Outcome.DUPLICATE_KEY, 2)
    answer = store.push(parsed(push(version=1)))
    assert answer.outcome is Outcome.DUPLICATE_KEY
    assert store.body("0551010") == before
    stats = store.stats()
    assert stats.pushes_applied == 2
    assert stats.applied_per_key == {"0551010:1": 1, "0551010:2": 1}


def test_bodies_are_independent(store: Store) -> None:
    store.push(parsed(push("0551010", version=9)))
    answer = store.push(parsed(push("0551011", version=1)))
    assert answer.outcome is Outcome.APPLIED


def test_apply_and_key_record_are_one_transaction(store: Store, db_path: Path) -> None:
    store.push(parsed(push(version=1)))
    with sqlite3.connect(db_path) as other:
        other.execute(
            "CREATE TRIGGER refuse_keys BEFORE INSERT ON applied_keys"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    with pytest.raises(sqlite3.IntegrityError):
        store.push(parsed(push(version=2, rows=[])))
    held = store.body("0551010")
    assert held is not None
    assert held.registry_version == 1  # the body's row was rolled back with the key's
    assert store.stats().pushes_applied == 1


def test_received_pushes_are_counted_separately(store: Store) -> None:
    store.count_received()
    store.count_received()
    store.push(parsed(push()))
    stats = store.stats()
    assert (stats.pushes_received, stats.pushes_applied) == (2, 1)


def test_everything_survives_reopening(db_path: Path) -> None:
    first = Store.open(db_path)
    first.count_received()
    first.push(parsed(push(version=4)))
    first.close()
    second = Store.open(db_path)
    try:
        held = second.body("0551010")
        assert held is not None
        assert held.registry_version == 4
        assert second.push(parsed(push(version=4))).outcome is Outcome.DUPLICATE_KEY
        assert second.stats().pushes_received == 1
    finally:
        second.close()


def test_unknown_body_is_none(store: Store) -> None:
    assert store.body("0551010") is None


def test_listing_pages_by_code_with_recomputed_hashes(store: Store) -> None:
    for code in ("0551012", "0551010", "SEK012", "0551011"):
        store.push(parsed(push(code, version=2)))
    first, next_after = store.listing(after=None, limit=2)
    assert [i.body_code for i in first] == ["0551010", "0551011"]
    assert next_after == "0551011"
    second, next_after = store.listing(after="0551011", limit=2)
    assert [i.body_code for i in second] == ["0551012", "SEK012"]
    assert next_after is None  # exactly at the end: no empty extra page
    assert all(i.registry_version == 2 and i.content_hash == spec_hash([row()]) for i in second)
    assert store.listing(after="SEK012", limit=5) == ([], None)


def test_tampering_changes_the_listing_hash_only(store: Store) -> None:
    store.push(parsed(push(version=3)))
    assert store.tamper("0551010", [Row.model_validate(row(quantity=11))])
    held = store.body("0551010")
    assert held is not None
    assert (held.registry_version, held.content_hash) == (3, spec_hash([row()]))  # kept
    assert held.rows[0].quantity == 11
    [listed], _ = store.listing(after=None, limit=10)
    assert listed.content_hash == spec_hash([row(quantity=11)])


def test_listing_hash_sorts_tampered_rows_first(store: Store) -> None:
    store.push(parsed(push(rows=two_rows())))
    store.tamper("0551010", [Row.model_validate(r) for r in reversed(two_rows())])
    [listed], _ = store.listing(after=None, limit=10)
    assert listed.content_hash == spec_hash(two_rows())  # same table, other order: same hash


def test_tampering_an_unknown_body_is_refused(store: Store) -> None:
    assert not store.tamper("0551010", [])


def test_reset_forgets_everything(store: Store) -> None:
    store.count_received()
    store.push(parsed(push(version=3)))
    store.reset()
    assert store.body("0551010") is None
    assert store.stats().pushes_received == 0
    assert store.stats().applied_per_key == {}
    assert store.push(parsed(push(version=1))).outcome is Outcome.APPLIED
