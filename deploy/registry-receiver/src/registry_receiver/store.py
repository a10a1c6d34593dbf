"""The receiver's storage: one SQLite file holding the latest table per body and every applied key.

Why this exists: the receiver must survive kill -9 with what it acknowledged, and must apply a
key at most once. The apply (the body's row) and the key record (with its applied counter) are
written in one transaction, so a crash leaves both or neither.

Usage::

    store = Store.open(Path(".local/registry-receiver/receiver.sqlite3"))
    answer = store.push(push)            # PushAnswer: applied | stale_version | duplicate_key
    held = store.body("0551010")         # HeldBody | None
    items, next_after = store.listing(after=None, limit=100)

Notes: WAL journal with ``synchronous=FULL``: a commit is on disk before the answer leaves. One
connection serialised by a lock; the receiver's load is tests and demos, not throughput. The applied
counter is incremented (never reset) on conflict, so a key applied twice shows as ``n > 1`` in the
stats instead of being hidden.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from registry_receiver import domain
from registry_receiver.schemas import (
    Basis,
    HeldBody,
    ListingItem,
    Outcome,
    PushAnswer,
    Row,
    TablePush,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS bodies (
    body_code        TEXT PRIMARY KEY,
    registry_version INTEGER NOT NULL,
    content_hash     TEXT NOT NULL,
    as_of            TEXT NOT NULL,
    basis            TEXT NOT NULL,
    mapping_version  TEXT NOT NULL,
    rows             TEXT NOT NULL,
    push             TEXT NOT NULL,
    received_at      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_keys (
    idempotency_key  TEXT PRIMARY KEY,
    body_code        TEXT NOT NULL,
    registry_version INTEGER NOT NULL,
    applied          INTEGER NOT NULL,
    first_applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_pushes (
    idempotency_key  TEXT PRIMARY KEY,
    body_code        TEXT NOT NULL,
    registry_version INTEGER NOT NULL,
    basis            TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    push             TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
RECEIVED = "pushes_received"
APPLIED = "pushes_applied"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Stats:
    """What the receiver counted: pushes that arrived, pushes applied, applications per key."""

    pushes_received: int
    pushes_applied: int
    applied_per_key: dict[str, int]


class Store:
    """The latest table per body and the applied keys, in one SQLite file."""

    def __init__(self, connection: sqlite3.Connection, clock: Callable[[], datetime]) -> None:
        self._connection = connection
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], datetime] = _now) -> Store:
        """Open (creating if needed) the database at `path`, durable on every commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself.
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(SCHEMA)
        return cls(connection, clock)

    def close(self) -> None:
        """Close the database (a WAL checkpoint happens on the last close)."""
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def count_received(self) -> None:
        """Count one push that reached the data port, whatever then happens to it."""
        with self._transaction() as db:
            _increment(db, RECEIVED)

    def push(self, push: TablePush) -> PushAnswer:
        """Apply a valid push by the contract's rules and return the answer; one transaction."""
        with self._transaction() as db:
            key_applied = (
                db.execute(
                    "SELECT 1 FROM applied_keys WHERE idempotency_key = ?", (push.idempotency_key,)
                ).fetchone()
                is not None
            )
            held = db.execute(
                "SELECT registry_version, content_hash FROM bodies WHERE body_code = ?",
                (push.body_code,),
            ).fetchone()
            outcome = domain.decide(
                held_version=held[0] if held else None,
                key_applied=key_applied,
                registry_version=push.registry_version,
            )
            if outcome is not Outcome.APPLIED:
                version, stored_hash = held if held else (0, "")
                return PushAnswer(
                    body_code=push.body_code,
                    outcome=outcome,
                    held_version=version,
                    content_hash=stored_hash,
                )
            _apply(db, push, received_at=self._clock())
        return PushAnswer(
            body_code=push.body_code,
            outcome=Outcome.APPLIED,
            held_version=push.registry_version,
            content_hash=push.content_hash,
        )

    def body(self, body_code: str) -> HeldBody | None:
        """Return the table held for `body_code`, or None if no push was ever applied for it."""
        with self._lock:
            found = self._connection.execute(
                "SELECT body_code, registry_version, content_hash, as_of, basis, mapping_version,"
                " rows, received_at FROM bodies WHERE body_code = ?",
                (body_code,),
            ).fetchone()
        if found is None:
            return None
        code, version, stored_hash, as_of, basis, mapping_version, rows, received_at = found
        return HeldBody(
            body_code=code,
            registry_version=version,
            content_hash=stored_hash,
            as_of=datetime.fromisoformat(as_of),
            basis=Basis(basis),
            mapping_version=mapping_version,
            rows=_rows_from_json(rows),
            received_at=datetime.fromisoformat(received_at),
        )

    def listing(self, *, after: str | None, limit: int) -> tuple[list[ListingItem], str | None]:
        """Return up to `limit` bodies with codes after `after`, by code, and the next page's key.

        The hash is recomputed from the held rows, so a table altered behind the sender's back
        shows a hash different from the one it acknowledged.
        """
        with self._lock:
            found = self._connection.execute(
                "SELECT body_code, registry_version, rows FROM bodies WHERE body_code > ?"
                " ORDER BY body_code LIMIT ?",
                (after if after is not None else "", limit + 1),
            ).fetchall()
        items = [
            ListingItem(
                body_code=code,
                registry_version=version,
                content_hash=domain.canonical_hash(_rows_from_json(rows)),
            )
            for code, version, rows in found[:limit]
        ]
        next_after = items[-1].body_code if len(found) > limit else None
        return items, next_after

    def tamper(self, body_code: str, rows: Sequence[Row]) -> bool:
        """Replace the rows held for `body_code` (version, stored hash kept); False if unknown."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE bodies SET rows = ? WHERE body_code = ?", (_rows_to_json(rows), body_code)
            ).rowcount
        return changed == 1

    def reset(self) -> None:
        """Forget every body, key and counter."""
        with self._transaction() as db:
            db.execute("DELETE FROM bodies")
            db.execute("DELETE FROM applied_keys")
            db.execute("DELETE FROM applied_pushes")
            db.execute("DELETE FROM counters")

    def stats(self) -> Stats:
        """Return the counters and the number of applications of each key."""
        with self._lock:
            counters = dict(self._connection.execute("SELECT name, value FROM counters").fetchall())
            per_key = dict(
                self._connection.execute(
                    "SELECT idempotency_key, applied FROM applied_keys ORDER BY idempotency_key"
                ).fetchall()
            )
        return Stats(
            pushes_received=counters.get(RECEIVED, 0),
            pushes_applied=counters.get(APPLIED, 0),
            applied_per_key=per_key,
        )


def _apply(db: sqlite3.Connection, push: TablePush, *, received_at: datetime) -> None:
    db.execute(
        "INSERT INTO bodies (body_code, registry_version, content_hash, as_of, basis,"
        " mapping_version, rows, push, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (body_code) DO UPDATE SET registry_version = excluded.registry_version,"
        " content_hash = excluded.content_hash, as_of = excluded.as_of, basis = excluded.basis,"
        " mapping_version = excluded.mapping_version, rows = excluded.rows,"
        " push = excluded.push, received_at = excluded.received_at",
        (
            push.body_code,
            push.registry_version,
            push.content_hash,
            push.as_of.isoformat(),
            push.basis.value,
            push.mapping_version,
            _rows_to_json(push.rows),
            push.model_dump_json(),
            received_at.isoformat(),
        ),
    )
    db.execute(
        "INSERT INTO applied_keys (idempotency_key, body_code, registry_version, applied,"
        " first_applied_at) VALUES (?, ?, ?, 1, ?)"
        " ON CONFLICT (idempotency_key) DO UPDATE SET applied = applied + 1",
        (push.idempotency_key, push.body_code, push.registry_version, received_at.isoformat()),
    )
    # Every applied push, whole: what a registry received and when (an audit of the feed).
    db.execute(
        "INSERT OR IGNORE INTO applied_pushes (idempotency_key, body_code, registry_version, basis,"
        " received_at, push) VALUES (?, ?, ?, ?, ?, ?)",
        (
            push.idempotency_key,
            push.body_code,
            push.registry_version,
            push.basis.value,
            received_at.isoformat(),
            push.model_dump_json(),
        ),
    )
    _increment(db, APPLIED)


def _increment(db: sqlite3.Connection, name: str) -> None:
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1)"
        " ON CONFLICT (name) DO UPDATE SET value = value + 1",
        (name,),
    )


def _rows_to_json(rows: Sequence[Row]) -> str:
    return json.dumps([row.model_dump() for row in rows], ensure_ascii=False)


def _rows_from_json(text: str) -> list[Row]:
    return [Row.model_validate(row) for row in json.loads(text)]
