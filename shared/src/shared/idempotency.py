"""Idempotent commands: a retried request with the same `Idempotency-Key` gets the first answer.

Why this exists: school staff use phones on bad connections; a request whose answer was lost is sent
again. With an `Idempotency-Key` header, the first response (status and body) is stored in the same
transaction as the events it produced, so a retry returns it and appends nothing. The same key with
a
different request body is a client bug: 422 `idempotency-key-reused`. Two concurrent requests with
one
key: the second one's transaction fails on the key's primary key, rolls back its events, and answers
with the first one's stored response.

Usage (in a service's api.py)::

    @router.post("/items", status_code=201)
    async def register_item(body: RegisterItemRequest, store: EventStoreDep,
                            key: IdempotencyKeyDep) -> Response:
        async def command(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
            tx.append(item_id, events, expected_version=0)
            result, = await tx.flush()
            return 201, {"stream_id": item_id, "version": result.version}
        return await run_idempotent(store, key, command)

Notes: keys are scoped by method and route template, kept for `RETENTION` (purged by
`purge_expired`), and may be 1-255 visible ASCII characters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from shared.eventstore import EventStore, StoreTransaction
from shared.problems import Problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(days=7)
_MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's key for one logical request, with the fingerprint of that request."""

    scope: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer given to a key."""

    status_code: int
    body: str
    request_hash: str


class IdempotencyKeyTakenError(Exception):
    """Another request with the same key committed first (a concurrent retry)."""


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Return the hash that tells a true retry from a different request under the same key."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def idempotency_key(
    request: Request, key: Annotated[str | None, Header(alias=HEADER)] = None
) -> IdempotencyKey | None:
    """Read the `Idempotency-Key` header (if any) and fingerprint the request it came with."""
    if key is None:
        return None
    if not (1 <= len(key) <= _MAX_KEY) or not key.isascii() or not key.isprintable():
        raise Problem(
            400,
            "idempotency-key-invalid",
            "The Idempotency-Key header is not valid",
            f"{HEADER} must be 1-{_MAX_KEY} printable ASCII characters",
            errors=[
                {"field": HEADER, "in": "header", "reason": "1-255 printable ASCII characters"}
            ],
        )
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    scope = f"{request.method} {template}"
    body = await request.body()
    return IdempotencyKey(scope, key, fingerprint(request.method, request.url.path, body))


IdempotencyKeyDep = Annotated[IdempotencyKey | None, Depends(idempotency_key)]


async def lookup(store: EventStore, key: IdempotencyKey) -> StoredResponse | None:
    """Return the stored first response to `key`, if any."""
    async with store.pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT status_code, response_body, request_hash FROM idempotency_keys"
            " WHERE scope = %s AND key = %s",
            (key.scope, key.key),
        )
        row = await cursor.fetchone()
    return StoredResponse(row[0], row[1], row[2]) if row else None


async def remember(
    tx: StoreTransaction, key: IdempotencyKey, status_code: int, body: str, *, now: datetime
) -> None:
    """Store the response to `key` inside the caller's transaction (with its events)."""
    try:
        async with tx.connection.transaction():  # a savepoint: the error must not poison the tx
            await tx.connection.execute(
                "INSERT INTO idempotency_keys"
                " (scope, key, request_hash, status_code, response_body,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (key.scope, key.key, key.request_hash, status_code, body, now),
            )
    except psycopg.errors.UniqueViolation as exc:
        raise IdempotencyKeyTakenError(key.key) from exc


def _replay(stored: StoredResponse, key: IdempotencyKey) -> Response:
    if stored.request_hash != key.request_hash:
        raise Problem(
            422,
            "idempotency-key-reused",
            "The Idempotency-Key was used for another request",
            "A retry must repeat the first request exactly; use a new key for a new request.",
            errors=[{"field": HEADER, "in": "header", "reason": "already used with another body"}],
        )
    return Response(
        stored.body,
        status_code=stored.status_code,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


Command = Callable[[StoreTransaction], Awaitable[tuple[int, Any]]]


async def run_idempotent(
    store: EventStore, key: IdempotencyKey | None, command: Command, *, defer_begin: bool = False
) -> Response:
    """Run `command` in one store transaction, or replay the first answer given to `key`.

    `defer_begin`: the command's first statement begins the transaction (`tx.begin_prefix()`);
    ignored with a key (its record needs the transaction begun before the command's appends).
    """
    if key is not None:
        stored = await lookup(store, key)
        if stored is not None:
            return _replay(stored, key)
    try:
        async with store.transaction(defer_begin=defer_begin and key is None) as tx:
            status_code, body = await command(tx)
            await tx.flush()
            content = jsonable_body(body)
            if key is not None:
                await remember(tx, key, status_code, content, now=store.clock.now())
    except IdempotencyKeyTakenError:
        assert key is not None  # noqa: S101  (raised only when a key was given)
        stored = await lookup(store, key)
        if stored is None:  # pragma: no cover - the winner committed before our insert failed
            raise
        return _replay(stored, key)
    return Response(content, status_code=status_code, media_type="application/json")


_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_PLAIN = (str, int, float, bool, type(None))


def jsonable_body(body: Any) -> str:
    """Serialise a response body once, so the first answer and its replays are the same bytes."""
    if type(body) is dict and all(type(value) in _PLAIN for value in body.values()):
        return _compact(body)  # a command's answer (ids, versions): nothing to convert
    return _compact(jsonable_encoder(body))


async def purge_expired(
    store: EventStore, *, now: datetime, retention: timedelta = RETENTION
) -> int:
    """Delete keys older than `retention`; return how many."""
    async with store.pool.connection() as connection:
        cursor = await connection.execute(
            "DELETE FROM idempotency_keys WHERE created_at < %s", (now - retention,)
        )
        return cursor.rowcount


async def if_match_version(
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> int | None:
    """Read `If-Match: "<version>"` (the stream version the client read) as an expected version."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise Problem(
            400,
            "if-match-invalid",
            "The If-Match header is not a version",
            'If-Match must be the quoted stream version from the ETag, for example "3".',
            errors=[{"field": "If-Match", "in": "header", "reason": "expected a quoted integer"}],
        )
    return int(value)


IfMatchVersion = Annotated[int | None, Depends(if_match_version)]
