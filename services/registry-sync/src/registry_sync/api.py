"""The registry-sync HTTP API: delivery operations, the registry tables and their exports, metrics.

Why this exists: operators must see, per body, what the registry last acknowledged, what waits and
what is parked (and why), resend one body or all, and ask for a reconciliation; auditors and the
Ministry read a body's registry table (JSON, or CSV/XLSX with the registry's Greek headers, also
for every body at once, streamed). Reads need a global role (ministry administrator, registry
integration, auditor, helpdesk); changes need ministry administrator or registry integration.

Endpoints (all under /registry, plus /metrics in Prometheus' text format):
- GET  /registry/backlog                        counts, oldest pending age, failures
- GET  /registry/deliveries?state=&after=&limit= the ledger, keyset-paged by body code
- GET  /registry/deliveries/{body}               one body's delivery status
- POST /registry/deliveries/{body}/resend        a new version of one body (unparks it)
- POST /registry/deliveries/resend?state=        every body, or only the parked ones
- POST /registry/reconciliations                 ask the worker for a run; GET …/{id} its outcome
- GET  /registry/bodies/{body}/table[.csv|.xlsx] the body's table now
- GET  /registry/export.csv, /registry/export.xlsx   every body's table, streamed
"""

# ruff: noqa: PLR0917  (FastAPI endpoints receive their query parameters as arguments)

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from registry_sync.mapping import load_mapping
from registry_sync.reconcile import mark_for_resend, request_reconciliation
from registry_sync.render import BodyRef, iter_bodies_csv, iter_csv, write_bodies_xlsx, write_xlsx
from registry_sync.snapshot import read_body
from registry_sync.table import ItemFacts, Row, build_table_from_groups, row_to_json
from registry_sync.views import ledger, reconciliations
from shared import authz
from shared.auth import Principal, PrincipalDep
from shared.clock import Clock
from shared.events.units import GlobalRole
from shared.eventstore import libpq_url
from shared.problems import Problem
from shared.web import SessionDep, health_router

router = APIRouter()
router.include_router(health_router)

READERS = frozenset(
    {
        GlobalRole.MINISTRY_ADMIN,
        GlobalRole.REGISTRY_INTEGRATION,
        GlobalRole.AUDITOR,
        GlobalRole.HELPDESK,
    }
)
OPERATORS = frozenset({GlobalRole.MINISTRY_ADMIN, GlobalRole.REGISTRY_INTEGRATION})
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
State = Literal["pending", "parked", "idle", "all"]


async def _require(session: Any, principal: Principal, allowed: frozenset[GlobalRole]) -> None:
    if not (await authz.global_roles_of(session, principal)) & allowed:
        roles = ", ".join(sorted(role.value for role in allowed))
        raise Problem(403, "forbidden", "Not allowed", f"this needs one of the roles: {roles}")


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


PENDING = or_(ledger.c.inflight_version.is_not(None), ledger.c.wanted_seq > ledger.c.built_seq)


def _status(row: Any, now: datetime) -> dict[str, Any]:
    pending = row.inflight_version is not None or row.wanted_seq > row.built_seq
    since = row.inflight_since or row.dirty_since
    return {
        "body_code": row.body_code,
        "state": "parked" if row.parked_at else "pending" if pending else "idle",
        "acknowledged_version": row.acked_version,
        "acknowledged_hash": row.acked_hash,
        "acknowledged_at": row.acked_at,
        "last_version": row.last_version,
        "in_flight_version": row.inflight_version,
        "pending_since": since,
        "pending_age_s": round((now - since).total_seconds(), 3) if pending and since else None,
        "attempts": row.attempts,
        "failures_total": row.failures_total,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
        "parked_at": row.parked_at,
        "parked_reason": row.parked_reason,
        "mapping_version": row.mapping_version,
    }


def _state_filter(state: State) -> Any:
    return {
        "parked": ledger.c.parked_at.is_not(None),
        "pending": and_(ledger.c.parked_at.is_(None), PENDING),
        "idle": and_(ledger.c.parked_at.is_(None), ~PENDING),
        "all": True,
    }[state]


async def backlog(engine: AsyncEngine, now: datetime) -> dict[str, Any]:
    """Return the ledger's counts (also what /metrics reports)."""
    parked = ledger.c.parked_at.is_not(None)
    pending = and_(ledger.c.parked_at.is_(None), PENDING)
    since = func.coalesce(ledger.c.inflight_since, ledger.c.dirty_since)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    func.count().label("bodies"),
                    func.count().filter(pending).label("pending"),
                    func.count().filter(ledger.c.inflight_version.is_not(None)).label("in_flight"),
                    func.count().filter(parked).label("parked"),
                    func.count().filter(ledger.c.attempts > 0).label("retrying"),
                    func.coalesce(func.sum(ledger.c.failures_total), 0).label("failures_total"),
                    func.min(since).filter(pending).label("oldest_pending_since"),
                    func.count().filter(ledger.c.acked_version.is_not(None)).label("acknowledged"),
                )
            )
        ).one()
    oldest = row.oldest_pending_since
    return {
        "bodies": row.bodies,
        "pending": row.pending,
        "in_flight": row.in_flight,
        "parked": row.parked,
        "retrying": row.retrying,
        "acknowledged": row.acknowledged,
        "failures_total": int(row.failures_total),
        "oldest_pending_since": oldest,
        "oldest_pending_age_s": round(max(0.0, (now - oldest).total_seconds()), 3)
        if oldest
        else 0.0,
    }


@router.get("/registry/backlog", tags=["operations"])
async def get_backlog(
    request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Return how many bodies wait, are in flight or parked, and the oldest pending age."""
    await _require(session, principal, READERS)
    return await backlog(_engine(request), _clock(request).now())


@router.get("/registry/deliveries", tags=["operations"])
async def list_deliveries(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    state: State = "all",
    after: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Return the ledger rows in `state`, by body code after `after` (keyset paging)."""
    await _require(session, principal, READERS)
    statement = select(ledger).where(_state_filter(state))
    if after is not None:
        statement = statement.where(ledger.c.body_code > after)
    rows = list(await session.execute(statement.order_by(ledger.c.body_code).limit(limit)))
    now = _clock(request).now()
    return {
        "items": [_status(row, now) for row in rows],
        "next_after": rows[-1].body_code if len(rows) == limit else None,
    }


async def _ledger_row(session: Any, body_code: str) -> Any:
    row = (
        await session.execute(select(ledger).where(ledger.c.body_code == body_code))
    ).one_or_none()
    if row is None:
        raise Problem(404, "not-found", "No such body", f"body_code: no body {body_code!r} reports")
    return row


@router.get("/registry/deliveries/{body_code}", tags=["operations"])
async def get_delivery(
    body_code: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Return one body's delivery status: acknowledged, pending or parked (with the reason)."""
    await _require(session, principal, READERS)
    return _status(await _ledger_row(session, body_code), _clock(request).now())


@router.post("/registry/deliveries/{body_code}/resend", status_code=202, tags=["operations"])
async def resend_one(
    body_code: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Send the body's table again as a new version (unparking it)."""
    await _require(session, principal, OPERATORS)
    await _ledger_row(session, body_code)
    count = await mark_for_resend(_engine(request), [body_code], _clock(request).now())
    return {"resent": count}


@router.post("/registry/deliveries/resend", status_code=202, tags=["operations"])
async def resend_many(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    state: Literal["all", "parked"] = "all",
) -> dict[str, Any]:
    """Send every body's table again (or only the parked ones) as new versions."""
    await _require(session, principal, OPERATORS)
    engine, now = _engine(request), _clock(request).now()
    if state == "all":
        return {"resent": await mark_for_resend(engine, None, now)}
    codes = list(
        (
            await session.execute(select(ledger.c.body_code).where(ledger.c.parked_at.is_not(None)))
        ).scalars()
    )
    return {"resent": await mark_for_resend(engine, codes, now) if codes else 0}


@router.post("/registry/reconciliations", status_code=202, tags=["operations"])
async def ask_reconciliation(
    request: Request, session: SessionDep, principal: PrincipalDep
) -> JSONResponse:
    """Ask the worker to compare the receiver with the ledger; poll the returned location."""
    await _require(session, principal, OPERATORS)
    run_id = await request_reconciliation(_engine(request), _clock(request), by=principal.user_id)
    location = f"/registry/reconciliations/{run_id}"
    return JSONResponse(
        {"id": str(run_id), "status": "requested", "location": location},
        status_code=202,
        headers={"Location": location},
    )


@router.get("/registry/reconciliations/{run_id}", tags=["operations"])
async def get_reconciliation(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Return a reconciliation run: its status and what it found."""
    await _require(session, principal, READERS)
    row = (
        await session.execute(select(reconciliations).where(reconciliations.c.id == run_id))
    ).one_or_none()
    if row is None:
        raise Problem(404, "not-found", "No such reconciliation", f"id: no run {run_id}")
    return dict(row._mapping)


# ---------------------------------------------------------------------------------------------
# Tables and exports


@router.get("/registry/bodies/{body_code}/table", tags=["tables"])
async def get_table_json(body_code: str, session: SessionDep, principal: PrincipalDep) -> Response:
    """Return the body's registry table now, as JSON."""
    return await get_table(body_code, "json", session, principal)


@router.get("/registry/bodies/{body_code}/table.{suffix}", tags=["tables"])
async def get_table(
    body_code: str,
    suffix: Literal["json", "csv", "xlsx"],
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    """Return the body's registry table now (JSON; CSV or XLSX with the registry's headers)."""
    await _require(session, principal, READERS)
    connection = await session.connection()
    snapshot = await read_body(connection, body_code, mapping=load_mapping())
    if snapshot is None:
        raise Problem(404, "not-found", "No such body", f"body_code: no body {body_code!r}")
    rows = snapshot.table.rows
    if suffix == "csv":
        return StreamingResponse(
            iter_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers=_attachment(f"registry-{body_code}.csv"),
        )
    if suffix == "xlsx":
        content = await asyncio.to_thread(_xlsx_bytes, rows)
        return Response(content, media_type=XLSX, headers=_attachment(f"registry-{body_code}.xlsx"))
    return JSONResponse(
        {
            "body_code": body_code,
            "body_name": snapshot.body_name,
            "body_status": snapshot.body_status,
            "merged_into": snapshot.merged_into,
            "mapping_version": load_mapping().version,
            "rows": [row_to_json(row, line) for line, row in enumerate(rows, start=1)],
            "not_reported": [asdict(n) for n in snapshot.table.not_reported],
            "excluded_by_status": [asdict(e) for e in snapshot.table.excluded_by_status],
            "content_hash": snapshot.table.content_hash,
            "item_count": snapshot.table.item_count,
        }
    )


def _xlsx_bytes(rows: Any) -> bytes:
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as target:
        write_xlsx(target, rows)
        target.seek(0)
        return target.read()


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


EXPORT_SQL = """
    SELECT b.reports_to, r.name, i.category_id, i.manufacturer, i.model, i.acquisition_year,
           i.status, i.bundle_item_id IS NOT NULL AS in_bundle, count(*) AS n
      FROM rs_items AS i
      JOIN rs_bodies AS b ON b.unit_id = i.unit_id
      JOIN rs_bodies AS r ON r.unit_id = b.reports_to
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
     ORDER BY 1
"""


def iter_export_bodies(database_url: str) -> Iterator[tuple[BodyRef, tuple[Row, ...]]]:
    """Yield every body's table from a server-side cursor, one body at a time (flat memory)."""
    mapping = load_mapping()
    with (
        psycopg.connect(libpq_url(database_url)) as connection,
        connection.cursor(name="registry_export") as cursor,
    ):
        cursor.itersize = 5000
        cursor.execute(EXPORT_SQL)
        current: str | None = None
        name = ""
        groups: list[tuple[ItemFacts, int]] = []
        for code, body_name, category, manufacturer, model, year, status, bundled, n in cursor:
            if code != current:
                if current is not None:
                    yield BodyRef(current, name), build_table_from_groups(groups, mapping).rows
                current, name, groups = code, body_name, []
            groups.append((ItemFacts(category, manufacturer, model, year, status, bundled), n))
        if current is not None:
            yield BodyRef(current, name), build_table_from_groups(groups, mapping).rows


@router.get("/registry/export.{suffix}", tags=["tables"])
async def export_all(
    suffix: Literal["csv", "xlsx"],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    """Return every body's registry table, streamed (CSV) or as one workbook (XLSX)."""
    await _require(session, principal, READERS)
    database_url: str = request.app.state.settings.database_url
    if suffix == "csv":
        return StreamingResponse(
            iter_bodies_csv(iter_export_bodies(database_url)),
            media_type="text/csv; charset=utf-8",
            headers=_attachment("registry-export.csv"),
        )
    return StreamingResponse(
        _xlsx_chunks(database_url), media_type=XLSX, headers=_attachment("registry-export.xlsx")
    )


async def _xlsx_chunks(database_url: str) -> AsyncIterator[bytes]:
    with tempfile.TemporaryFile() as target:
        await asyncio.to_thread(write_bodies_xlsx, target, iter_export_bodies(database_url))
        target.seek(0)
        while chunk := await asyncio.to_thread(target.read, 1 << 16):
            yield chunk


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Return the delivery metrics in Prometheus' text format (backlog, oldest age, failures)."""
    figures = await backlog(_engine(request), _clock(request).now())
    lines = [
        "# HELP ictc_registry_backlog Bodies with a version waiting to be acknowledged.",
        "# TYPE ictc_registry_backlog gauge",
        f"ictc_registry_backlog {figures['pending']}",
        "# HELP ictc_registry_in_flight Bodies with a frozen version being delivered.",
        "# TYPE ictc_registry_in_flight gauge",
        f"ictc_registry_in_flight {figures['in_flight']}",
        "# HELP ictc_registry_parked Bodies whose delivery is parked for an operator.",
        "# TYPE ictc_registry_parked gauge",
        f"ictc_registry_parked {figures['parked']}",
        "# HELP ictc_registry_oldest_pending_seconds Age of the oldest pending delivery.",
        "# TYPE ictc_registry_oldest_pending_seconds gauge",
        f"ictc_registry_oldest_pending_seconds {figures['oldest_pending_age_s']}",
        "# HELP ictc_registry_failures_total Failed delivery attempts.",
        "# TYPE ictc_registry_failures_total counter",
        f"ictc_registry_failures_total {figures['failures_total']}",
    ]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
