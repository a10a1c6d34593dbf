"""Reconciliation: compare what the receiver holds with what the ledger says it acknowledged.

Why this exists: an acknowledgement says what the registry held then, not now. Someone may alter
or lose a body's data at the receiver behind our back; the registry's listing recomputes each held
table's content hash, so walking it beside the ledger finds every body whose hash or version
differs from the acknowledged one (or that the receiver lost) and marks it to be re-sent as a new
version.

Usage::

    result = await reconcile(engine, client, clock=clock)      # a ReconcileResult with counts

Notes: both sides are walked in body-code order, one page at a time (keyset paging on the
receiver, a server-side range scan on the ledger), so memory stays flat for any number of bodies.
Bodies with a delivery in flight or pending are skipped: their next version settles them anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from registry_sync.projector import NOTIFY_CHANNEL
from registry_sync.views import ledger, reconciliations
from shared.clock import Clock

log = structlog.get_logger(__name__)

PAGE = 2000


@dataclass
class ReconcileResult:
    """What one run found (and marked to re-send)."""

    checked: int = 0
    mismatched: int = 0
    missing: int = 0
    unknown_at_receiver: int = 0


@dataclass(frozen=True)
class _Held:
    body_code: str
    registry_version: int
    content_hash: str


async def _receiver_pages(client: httpx.AsyncClient) -> AsyncIterator[list[_Held]]:
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if after is not None:
            params["after"] = after
        response = await client.get("/v1/bodies", params=params)
        response.raise_for_status()
        page = response.json()
        yield [
            _Held(i["body_code"], int(i["registry_version"]), i["content_hash"])
            for i in page["items"]
        ]
        after = page.get("next_after")
        if after is None:
            return


async def _ledger_pages(engine: AsyncEngine) -> AsyncIterator[list[Any]]:
    after = ""
    code = ledger.c.body_code.collate("C")
    while True:
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(
                        ledger.c.body_code,
                        ledger.c.acked_version,
                        ledger.c.acked_hash,
                        ledger.c.inflight_version,
                        ledger.c.wanted_seq,
                        ledger.c.built_seq,
                        ledger.c.parked_at,
                    )
                    .where(code > after)
                    .order_by(code)
                    .limit(PAGE)
                )
            )
        if not rows:
            return
        yield rows
        after = rows[-1].body_code


async def _merged(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> AsyncIterator[tuple[Any | None, _Held | None]]:
    """Yield (ledger row, receiver entry) pairs in body-code order (either may be None)."""
    ours = _ledger_pages(engine)
    theirs = _receiver_pages(client)
    our_page: list[Any] = []
    their_page: list[_Held] = []
    our_done = their_done = False
    while True:
        if not our_page and not our_done:
            our_page = list(await anext(ours, []))
            our_done = not our_page
        if not their_page and not their_done:
            their_page = list(await anext(theirs, []))
            their_done = not their_page
        if not our_page and not their_page:
            return
        if their_page and (not our_page or their_page[0].body_code < our_page[0].body_code):
            yield None, their_page.pop(0)
        elif our_page and (not their_page or our_page[0].body_code < their_page[0].body_code):
            yield our_page.pop(0), None
        else:
            yield our_page.pop(0), their_page.pop(0)


async def reconcile(
    engine: AsyncEngine, client: httpx.AsyncClient, *, clock: Clock
) -> ReconcileResult:
    """Compare every body and mark those that differ to be re-sent; return the counts."""
    result = ReconcileResult()
    to_resend: list[str] = []
    async for ours, theirs in _merged(engine, client):
        if ours is None:
            result.unknown_at_receiver += 1
            continue
        settled = (
            ours.inflight_version is None
            and ours.wanted_seq <= ours.built_seq
            and ours.parked_at is None
        )
        if not settled or ours.acked_version is None:
            continue
        result.checked += 1
        if theirs is None:
            result.missing += 1
            to_resend.append(ours.body_code)
        elif (
            theirs.content_hash != ours.acked_hash or theirs.registry_version != ours.acked_version
        ):
            result.mismatched += 1
            to_resend.append(ours.body_code)
        if len(to_resend) >= PAGE:
            await mark_for_resend(engine, to_resend, clock.now())
            to_resend.clear()
    if to_resend:
        await mark_for_resend(engine, to_resend, clock.now())
    log.info("registry_reconciled", **result.__dict__)
    return result


async def mark_for_resend(
    engine: AsyncEngine, body_codes: list[str] | None, at: datetime, *, unpark: bool = True
) -> int:
    """Make bodies (None: every body) owe a new version; unpark them. Return how many."""
    values: dict[str, Any] = {
        "wanted_seq": ledger.c.wanted_seq + 1,
        "dirty_since": func.coalesce(ledger.c.dirty_since, at),
    }
    if unpark:
        values |= {
            "parked_at": None,
            "parked_reason": None,
            "attempts": 0,
            "next_attempt_at": None,
            # A parked in-flight version may be what the receiver refused: build a fresh one.
            "inflight_version": None,
            "inflight_payload": None,
            "inflight_hash": None,
        }
    statement = update(ledger).values(**values)
    if body_codes is not None:
        statement = statement.where(ledger.c.body_code.in_(body_codes))
    async with engine.begin() as conn:
        result = await conn.execute(statement)
        await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
    return int(result.rowcount)


async def request_reconciliation(engine: AsyncEngine, clock: Clock, *, by: str) -> UUID:
    """Record a request for a reconciliation run (the worker runs it); return its id."""
    run_id = uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(reconciliations).values(
                id=run_id, requested_at=clock.now(), requested_by=by, status="requested"
            )
        )
    return run_id


async def run_requested(
    engine: AsyncEngine, client: httpx.AsyncClient, *, clock: Clock
) -> UUID | None:
    """Run the oldest requested reconciliation, recording its outcome; None if none waits."""
    async with engine.begin() as conn:
        run_id: UUID | None = (
            await conn.execute(
                select(reconciliations.c.id)
                .where(reconciliations.c.status == "requested")
                .order_by(reconciliations.c.requested_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if run_id is None:
            return None
        await conn.execute(
            update(reconciliations)
            .where(reconciliations.c.id == run_id)
            .values(status="running", started_at=clock.now())
        )
    try:
        result = await reconcile(engine, client, clock=clock)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        await _finish(engine, run_id, clock, status="failed", error=f"{type(exc).__name__}: {exc}")
        return run_id
    await _finish(engine, run_id, clock, status="done", **result.__dict__)
    return run_id


async def _finish(engine: AsyncEngine, run_id: UUID, clock: Clock, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(reconciliations)
            .where(reconciliations.c.id == run_id)
            .values(finished_at=clock.now(), **values)
        )
