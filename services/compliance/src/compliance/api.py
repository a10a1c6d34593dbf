"""The compliance HTTP API: public reports, eligibility, campaigns, dashboards, campaign commands.

Why this exists: the public lists of units that have and have not completed their inventory are
the service's face; directorates follow their schools on dashboards; the Ministry opens ad-hoc
campaigns, extends deadlines and closes campaigns. Reads come from the projection only.

Who may do what:
- the reports (`/reports/not-completed|completed.html|csv|json`), eligibility
  (`/eligibility/<campaign>.json|csv`) and the campaign list: anyone, no token;
- dashboards (`/dashboards/<region or directorate id>.html|json|xlsx`, or `all`): a signed-in
  user with `read` on that region or directorate (any role there, recursive or not; or auditor,
  helpdesk, ministry administrator); `all` only the global readers;
- opening, extending and closing campaigns: `ministry_admin` only; every write takes an
  `Idempotency-Key` and (extensions, closing) `If-Match` with the campaign stream's version.
"""

# ruff: noqa: PLR0917  (FastAPI endpoints receive their query parameters as arguments)

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from compliance import dashboards, domain, handlers, reports, views
from compliance.commands import CloseCampaign, ExtendDeadline, OpenCampaign
from compliance.report_memo import TreeChoices, TreeMemo
from compliance.reports import ReportKind, ReportRequest, SortKey
from compliance.settings import Settings
from compliance.windows import previous_windows
from shared import authz
from shared.auth import Principal, PrincipalDep
from shared.authz import Action
from shared.events.compliance import CampaignId, ScopeKind
from shared.events.envelope import Actor
from shared.events.units import GlobalRole
from shared.eventstore import AppendContext, AppendResult, StoreTransaction
from shared.idempotency import IdempotencyKeyDep, IfMatchVersion, run_idempotent
from shared.problems import Problem, problem_response
from shared.telemetry import current_traceparent
from shared.web import ClockDep, SessionDep, StoreDep, health_router

router = APIRouter()
router.include_router(health_router)

READERS = frozenset({GlobalRole.AUDITOR, GlobalRole.HELPDESK, GlobalRole.MINISTRY_ADMIN})
PUBLIC_CACHE = "public, max-age=15"

# ---------------------------------------------------------------------------------------------
# Dependencies


# `async def` on purpose: FastAPI runs a plain `def` dependency in a worker thread, two thread
# hand-offs per request for an attribute read.
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return factory


async def _report_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.report_sessions
    return factory


async def _tree_memo(request: Request) -> TreeMemo:
    """Return the process's `TreeMemo` (made on first use: it only caches, nothing to open)."""
    memo: TreeMemo | None = getattr(request.app.state, "report_tree_memo", None)
    if memo is None:
        memo = request.app.state.report_tree_memo = TreeMemo()
    return memo


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
# The public reports' sessions: autocommit, no pre-ping (`compliance.main`): each statement is a
# round trip of its own, without BEGIN, ROLLBACK or a ping around them.
ReportSessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_report_sessions)]
TreeMemoDep = Annotated[TreeMemo, Depends(_tree_memo)]


def install_domain_problems(app: FastAPI) -> None:
    """Make the compliance domain errors and unknown campaigns leave `app` as problem+json."""

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, domain.ComplianceDomainError)  # noqa: S101  (registered for these)
        errors = [{"field": exc.field, "in": "body", "reason": str(exc)}] if exc.field else []
        problem = Problem(
            exc.status, exc.slug, type(exc).__doc__ or exc.slug, str(exc), errors=errors
        )
        return problem_response(problem, request.url.path)

    async def on_unknown_campaign(request: Request, exc: Exception) -> Response:
        problem = Problem(404, "campaign-not-found", "No such campaign", f"no campaign {exc}")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(domain.ComplianceDomainError, on_domain_error)
    app.add_exception_handler(reports.UnknownCampaignError, on_unknown_campaign)


# ---------------------------------------------------------------------------------------------
# Public reports


def _report_request(
    kind: ReportKind,
    *,
    campaign: str | None,
    region: str | None,
    directorate: str | None,
    unit_type: str | None,
    code: str | None,
    q: str | None,
    sort: SortKey,
    order: Literal["asc", "desc"],
    page: int,
    per_page: int | None,
) -> ReportRequest:
    return ReportRequest(
        kind=kind,
        campaign_id=campaign or None,
        filters=views.UnitFilters(
            region_id=region or None,
            directorate_id=directorate or None,
            unit_type=unit_type or None,
            unit_code=code or None,
            search=q or None,
        ),
        sort=sort,
        is_descending=order == "desc",
        page=page,
        per_page=per_page,
    )


Campaign = Annotated[
    str | None, Query(max_length=64, description="a campaign id (default: the current window)")
]
Region = Annotated[str | None, Query(max_length=32, description="a regional directorate's code")]
Directorate = Annotated[str | None, Query(max_length=32, description="a directorate's code")]
UnitType = Annotated[str | None, Query(max_length=200, description="a unit type, as written")]
Code = Annotated[str | None, Query(max_length=32, description="a unit code or its prefix")]
Search = Annotated[str | None, Query(max_length=200, description="words of the name, any accents")]
Sort = Annotated[SortKey, Query()]
Order = Annotated[Literal["asc", "desc"], Query()]
Page = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int | None, Query(ge=1, le=reports.MAX_PER_PAGE)]


@router.get("/reports/{kind}.{fmt}", tags=["reports"], response_model=None)
async def report(
    kind: Literal["not-completed", "completed"],
    fmt: Literal["html", "csv", "json"],
    sessions: SessionsDep,
    report_sessions: ReportSessionsDep,
    clock: ClockDep,
    settings: SettingsDep,
    memo: TreeMemoDep,
    campaign: Campaign = None,
    region: Region = None,
    directorate: Directorate = None,
    unit_type: UnitType = None,
    code: Code = None,
    q: Search = None,
    sort: Sort = SortKey.NAME,
    order: Order = "asc",
    page: Page = 1,
    per_page: PerPage = None,
) -> Response:
    """Return the public report of units that have not completed (or have) their inventory."""
    if fmt == "html" and per_page is None:
        per_page = settings.report_page_size
    asked = _report_request(
        ReportKind(kind), campaign=campaign, region=region, directorate=directorate,
        unit_type=unit_type, code=code, q=q, sort=sort, order=order, page=page, per_page=per_page,
    )  # fmt: skip
    now = clock.now()
    if fmt == "csv":
        return _csv_response(sessions, asked, now, filename=f"{kind}.csv")
    built, choices = await _read_report(report_sessions, memo, asked, now, as_json=fmt == "json")
    if fmt == "json":
        return Response(
            reports.render_json(built),
            media_type="application/json",
            headers={"Cache-Control": PUBLIC_CACHE},
        )
    page_html = reports.render_html(
        built,
        base=f"/reports/{kind}",
        regions=choices.regions,
        directorates=choices.directorates,
    )
    return Response(
        page_html, media_type="text/html; charset=utf-8", headers={"Cache-Control": PUBLIC_CACHE}
    )


async def _read_report(
    sessions: async_sessionmaker[AsyncSession],
    memo: TreeMemo,
    asked: ReportRequest,
    now: datetime,
    *,
    as_json: bool,
) -> tuple[reports.Report, TreeChoices]:
    """Build a report; once more on a fresh connection if the first had gone stale (a read)."""
    chosen = reports.chosen_campaign_id(asked.campaign_id, now)
    for is_last in (False, True):
        try:
            async with sessions() as session:
                choices, campaign = await memo.choices_and_campaign(session, chosen)
                if campaign is None:
                    raise reports.UnknownCampaignError(chosen)
                built = await reports.build_report(
                    session, asked, now=now, choices=choices, campaign=campaign,
                    totals=memo.totals, rows_as_json=as_json,
                )  # fmt: skip
                return built, choices
        except DBAPIError as exc:
            # No pre-ping on these connections: after a PostgreSQL restart the first statement on
            # a stale one fails, the pool drops the stale ones, and the read is safe to repeat.
            if is_last or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _csv_response(
    sessions: async_sessionmaker[AsyncSession],
    asked: ReportRequest,
    now: datetime,
    *,
    filename: str,
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        # Its own session: the request's closes when the endpoint returns, before streaming ends.
        async with sessions() as session:
            async for chunk in reports.csv_chunks(session, asked, now=now):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": PUBLIC_CACHE,
        },
    )


@router.get("/eligibility/{campaign_id}.{fmt}", tags=["reports"], response_model=None)
async def eligibility(
    campaign_id: str,
    fmt: Literal["csv", "json"],
    session: SessionDep,
    sessions: SessionsDep,
    clock: ClockDep,
    region: Region = None,
    directorate: Directorate = None,
    unit_type: UnitType = None,
    code: Code = None,
    q: Search = None,
) -> Response:
    """Return the units that completed the campaign in time (the funding companion list)."""
    asked = _report_request(
        ReportKind.ELIGIBLE, campaign=campaign_id, region=region, directorate=directorate,
        unit_type=unit_type, code=code, q=q, sort=SortKey.CODE, order="asc", page=1, per_page=None,
    )  # fmt: skip
    now = clock.now()
    await reports.resolve_campaign(session, campaign_id, now)  # 404 before streaming starts
    if fmt == "csv":
        return _csv_response(sessions, asked, now, filename=f"eligible-{campaign_id}.csv")
    built = await reports.build_report(session, asked, now=now, rows_as_json=True)
    return Response(reports.render_json(built), media_type="application/json")


# ---------------------------------------------------------------------------------------------
# Campaigns (reads are public)


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(session: SessionDep, clock: ClockDep) -> dict[str, Any]:
    """Return the ad-hoc campaigns and the last regular windows, newest first."""
    now = clock.now()
    regular = [
        await views.load_campaign(session, w.campaign_id) or w for w in previous_windows(now, 4)
    ]
    adhoc = await views.adhoc_campaigns(session)
    return {"campaigns": [reports.campaign_json(c) for c in [*adhoc, *regular]]}


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(campaign_id: str, session: SessionDep) -> dict[str, Any]:
    """Return one campaign with its extensions."""
    campaign = await views.load_campaign(session, campaign_id)
    if campaign is None:
        raise Problem(404, "campaign-not-found", "No such campaign", f"no campaign {campaign_id}")
    return reports.campaign_json(campaign)


class OpenCampaignRequest(BaseModel):
    """Open an ad-hoc campaign."""

    model_config = ConfigDict(extra="forbid")

    campaign_id: CampaignId | None = Field(
        default=None, description="adhoc-…; chosen by the server when omitted"
    )
    title: Annotated[str, Field(min_length=1, max_length=200)]
    deadline_on: date = Field(description="the last Athens day on which units may certify")
    scope_kind: Literal[ScopeKind.ALL, ScopeKind.UNIT_TYPE, ScopeKind.REGION] = ScopeKind.ALL
    scope_value: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    opens_at: datetime | None = Field(default=None, description="default: now")
    reason: Annotated[str, Field(max_length=2000)] = ""


class ExtendDeadlineRequest(BaseModel):
    """Extend a campaign's deadline for a region or directorate (or all units)."""

    model_config = ConfigDict(extra="forbid")

    scope_kind: Literal[ScopeKind.ALL, ScopeKind.REGION, ScopeKind.DIRECTORATE]
    scope_unit_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    deadline_on: date
    reason: Annotated[str, Field(max_length=2000)] = ""


class CloseCampaignRequest(BaseModel):
    """Close a campaign."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=2000)] = ""


def _context(principal: Principal) -> AppendContext:
    return AppendContext(
        actor=Actor(principal.user_id, GlobalRole.MINISTRY_ADMIN.value),
        traceparent=current_traceparent(),
    )


async def _require_admin(session: AsyncSession, principal: Principal) -> None:
    if GlobalRole.MINISTRY_ADMIN not in await authz.global_roles_of(session, principal):
        raise Problem(403, "forbidden", "Not allowed", "only a ministry administrator may")


async def _require_scope_unit(session: AsyncSession, scope_id: str | None, field: str) -> None:
    if scope_id is None:
        return
    if await dashboards.find_scope(session, scope_id) is None:
        raise Problem(
            422, "scope-unit-unknown", "Unknown region or directorate",
            f"{scope_id} is no region or directorate known here",
            errors=[{"field": field, "in": "body", "reason": "unknown region or directorate"}],
        )  # fmt: skip


def _answer(result: AppendResult, campaign_id: str, status: int) -> tuple[int, dict[str, Any]]:
    return status, {
        "campaign_id": campaign_id,
        "stream_id": result.stream_id,
        "version": result.version,
        "position": result.last_position,
    }


def _with_etag(response: Response) -> Response:
    if 200 <= response.status_code < 300:  # noqa: PLR2004  (the success range)
        response.headers["ETag"] = f'"{json.loads(bytes(response.body))["version"]}"'
    return response


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def open_campaign(
    body: OpenCampaignRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
) -> Response:
    """Open an ad-hoc campaign (ministry administrators)."""
    await _require_admin(session, principal)
    if body.scope_kind is ScopeKind.REGION:
        await _require_scope_unit(session, body.scope_value, "scope_value")
    campaign_id = body.campaign_id or f"adhoc-{clock.now().strftime('%Y%m%d%H%M%S%f')}"
    command = OpenCampaign(
        campaign_id=campaign_id, title=body.title, deadline_on=body.deadline_on,
        scope_kind=body.scope_kind, scope_value=body.scope_value, opens_at=body.opens_at,
        reason=body.reason,
    )  # fmt: skip

    async def run(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        result = await handlers.open_campaign(
            command, store=store, tx=tx, clock=clock, context=_context(principal)
        )
        return _answer(result, campaign_id, 201)

    return _with_etag(await run_idempotent(store, key, run))


@router.post("/campaigns/{campaign_id}/extensions", tags=["campaigns"])
async def extend_deadline(
    campaign_id: str,
    body: ExtendDeadlineRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Extend a campaign's deadline for a region or directorate (ministry administrators)."""
    await _require_admin(session, principal)
    await _require_scope_unit(session, body.scope_unit_id, "scope_unit_id")
    command = ExtendDeadline(
        campaign_id=campaign_id, scope_kind=body.scope_kind, scope_unit_id=body.scope_unit_id,
        deadline_on=body.deadline_on, reason=body.reason, expected_version=expected_version,
    )  # fmt: skip

    async def run(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        result = await handlers.extend_deadline(
            command, store=store, tx=tx, clock=clock, context=_context(principal)
        )
        return _answer(result, campaign_id, 200)

    return _with_etag(await run_idempotent(store, key, run))


@router.post("/campaigns/{campaign_id}/close", tags=["campaigns"])
async def close_campaign(
    campaign_id: str,
    body: CloseCampaignRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Close a campaign: no certification counts for it any more (ministry administrators)."""
    await _require_admin(session, principal)
    command = CloseCampaign(
        campaign_id=campaign_id, reason=body.reason, expected_version=expected_version
    )

    async def run(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        result = await handlers.close_campaign(
            command, store=store, tx=tx, clock=clock, context=_context(principal)
        )
        return _answer(result, campaign_id, 200)

    return _with_etag(await run_idempotent(store, key, run))


# ---------------------------------------------------------------------------------------------
# Dashboards, for signed-in readers of a region or directorate


@router.get("/dashboards/{scope_id}.{fmt}", tags=["dashboards"], response_model=None)
async def dashboard(
    scope_id: str,
    fmt: Literal["html", "json", "xlsx"],
    principal: PrincipalDep,
    session: SessionDep,
    clock: ClockDep,
    campaign: Campaign = None,
) -> Response:
    """Return a region's or directorate's dashboard (or every unit's, for global readers)."""
    scope = await dashboards.find_scope(session, scope_id)
    if scope is None:
        raise Problem(404, "scope-not-found", "No such region or directorate", scope_id)
    if scope.scope_id is None:
        if not (await authz.global_roles_of(session, principal)) & READERS:
            raise Problem(403, "forbidden", "Not allowed", "only global readers see every unit")
    else:
        await authz.require(session, principal, Action.READ, scope.scope_id)
    now = clock.now()
    chosen = await reports.resolve_campaign(session, campaign, now)
    board = await dashboards.build_dashboard(session, scope, chosen, now=now)
    if fmt == "json":
        return Response(dashboards.render_dashboard_json(board), media_type="application/json")
    if fmt == "xlsx":
        return Response(
            dashboards.render_dashboard_xlsx(board),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="dashboard-{scope_id}.xlsx"'},
        )
    return Response(
        dashboards.render_dashboard_html(board, base=f"/dashboards/{scope_id}"),
        media_type="text/html; charset=utf-8",
    )
