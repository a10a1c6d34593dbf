"""The public reports: units that have and have not completed their inventory, as HTML, CSV, JSON.

Why this exists: the circular that founded the service promises a public, continuously updated
list of the units that have not completed their inventory, and a matching list of those that have.
Directorates, the Ministry and journalists read it every day of a window, and funding decisions
have followed it; so it is read from the precomputed projection only (never the event store),
filterable, sortable and searchable without accents, and the same query answers all three formats.

Usage::

    report = await build_report(session, ReportRequest(kind=ReportKind.NOT_COMPLETED), now=now)
    render_json(report)            # bytes
    render_html(report)            # str: plain, printable, readable on a phone, no JavaScript
    csv_chunks(session, request, now=now)   # async iterator of bytes, UTF-8 BOM first (Excel)

Notes:
- "Not completed" is every unit in scope whose state in the campaign is not started, in progress
  or missed: this covers units that never completed their initial inventory, since any
  certification in the campaign completes it. "Completed" is certified or late, with the date.
- The campaign is the current regular window unless one is asked for (an ad-hoc campaign).
- Output is deterministic for a given projection and instant (a total order on every list, times
  in Athens with their offset), so a rebuilt projection gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Hashable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from html import escape
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import (
    CursorResult,
    Integer,
    Select,
    String,
    Text,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from compliance import views
from compliance.report_memo import (
    Totals,
    TreeChoices,
    region_and_directorate_options,
    unit_types,
)
from compliance.windows import Campaign, current_window, last_day_before
from shared.clock import ATHENS
from shared.events.compliance import ComplianceState
from shared.greek import sort_key

COMPLETED_STATES = (ComplianceState.CERTIFIED, ComplianceState.LATE)
NOT_COMPLETED_STATES = (
    ComplianceState.NOT_STARTED,
    ComplianceState.IN_PROGRESS,
    ComplianceState.MISSED,
)
STATE_LABELS = {
    ComplianceState.NOT_STARTED: "Δεν ξεκίνησε",
    ComplianceState.IN_PROGRESS: "Σε εξέλιξη",
    ComplianceState.CERTIFIED: "Ολοκληρώθηκε",
    ComplianceState.LATE: "Ολοκληρώθηκε εκπρόθεσμα",
    ComplianceState.MISSED: "Δεν ολοκληρώθηκε εγκαίρως",
    ComplianceState.OUT_OF_SCOPE: "Εκτός υποχρέωσης",
}
MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 200
CSV_BATCH = 2000


class ReportKind(StrEnum):
    """Which public report."""

    NOT_COMPLETED = "not-completed"
    COMPLETED = "completed"
    ELIGIBLE = "eligible"  # certified in time: the companion for funding decisions

    @property
    def states(self) -> tuple[ComplianceState, ...]:
        """Return the states the report lists."""
        match self:
            case ReportKind.NOT_COMPLETED:
                return NOT_COMPLETED_STATES
            case ReportKind.COMPLETED:
                return COMPLETED_STATES
            case ReportKind.ELIGIBLE:
                return (ComplianceState.CERTIFIED,)

    @property
    def heading(self) -> str:
        """Return the report's Greek title."""
        match self:
            case ReportKind.NOT_COMPLETED:
                return "Μονάδες που δεν έχουν ολοκληρώσει την απογραφή"
            case ReportKind.COMPLETED:
                return "Μονάδες που έχουν ολοκληρώσει την απογραφή"
            case ReportKind.ELIGIBLE:
                return "Μονάδες που ολοκλήρωσαν εμπρόθεσμα"


class SortKey(StrEnum):
    """Columns a report can be sorted by."""

    NAME = "name"
    CODE = "code"
    TYPE = "type"
    DIRECTORATE = "directorate"
    REGION = "region"
    STATE = "state"
    CERTIFIED_AT = "certified_at"
    LAST_CHANGE_AT = "last_change_at"
    ITEMS = "items"


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What a reader asked for: the report, the campaign, filters, order and page."""

    kind: ReportKind
    campaign_id: str | None = None
    filters: views.UnitFilters = field(default_factory=views.UnitFilters)
    sort: SortKey = SortKey.NAME
    is_descending: bool = False
    page: int = 1
    per_page: int | None = None  # None: every row (JSON, CSV)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One unit on a report."""

    unit_id: str
    name: str
    unit_type: str
    region_id: str | None
    region_name: str | None
    directorate_id: str | None
    directorate_name: str | None
    state: ComplianceState
    deadline_on: date
    certified_at: datetime | None
    has_initial_inventory: bool
    last_change_at: datetime | None
    item_count: int
    in_use_count: int
    pending_transfers: int
    absorbed_unit_ids: str | None


@dataclass(frozen=True, slots=True)
class GroupCount:
    """How many units of a region or directorate have and have not completed."""

    group_id: str | None
    name: str | None
    region_id: str | None
    completed: int
    not_completed: int

    @property
    def total(self) -> int:
        """Return the units in scope."""
        return self.completed + self.not_completed


@dataclass(frozen=True, slots=True)
class Report:
    """A report as computed: what was asked, the campaign, counts and the rows of the page."""

    request: ReportRequest
    campaign: Campaign
    generated_at: datetime
    completed: int
    not_completed: int
    regions: tuple[GroupCount, ...]
    directorates: tuple[GroupCount, ...]
    matching: int  # rows of this report matching the filters (over all pages)
    rows: tuple[ReportRow, ...]
    unit_types: tuple[str, ...]
    # The rows as JSON objects written by PostgreSQL (`build_report(rows_as_json=True)`), instead
    # of `rows`: what `render_json` writes them as, without a Python object per row.
    rows_json: tuple[str, ...] | None = None


class UnknownCampaignError(LookupError):
    """The report asked for a campaign that is neither a regular window nor a projected one."""


def chosen_campaign_id(campaign_id: str | None, now: datetime) -> str:
    """Return the campaign a report is about: the one asked for, or the current regular window."""
    return campaign_id or current_window(now).campaign_id


async def resolve_campaign(
    session: AsyncSession, campaign_id: str | None, now: datetime
) -> Campaign:
    """Return the asked campaign, or the current regular window (with its extensions)."""
    chosen = chosen_campaign_id(campaign_id, now)
    campaign = await views.load_campaign(session, chosen)
    if campaign is None:
        raise UnknownCampaignError(chosen)
    return campaign


# Orders that need each unit's activity (its state, last change, item count) to pick a page.
ACTIVITY_SORTS = (SortKey.STATE, SortKey.LAST_CHANGE_AT, SortKey.ITEMS)


def _state_subquery(
    request: ReportRequest,
    campaign: Campaign,
    now: datetime,
    *,
    lean: bool = False,
    filters: views.UnitFilters | None = None,
    bind: views.Binder = views.LITERALS,
) -> Any:
    return views.unit_state_select(
        campaign,
        now=now,
        scope_on=views.scope_day(campaign, now),
        filters=request.filters if filters is None else filters,
        lean=lean,
        with_activity=request.sort in ACTIVITY_SORTS,
        bind=bind,
    ).subquery("s")


# A report's statements, built and compiled once per shape (the request's kind, order, and what
# `views.state_shape` says of its campaign and filters), their values given as parameters: building
# and compiling the state select cost about 2 ms of Python per statement, for every request.
_DEFERRED = views.Binder(deferred=True)
_statements: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}


class _Statements:
    """One request's statements: shared text per shape, this request's parameters."""

    def __init__(
        self, session: AsyncSession, request: ReportRequest, campaign: Campaign, now: datetime
    ) -> None:
        self.session = session
        self.request = request
        self.campaign = campaign
        self.now = now
        self.base = (request.kind, request.sort, request.is_descending)

    async def execute(
        self, purpose: str, build: Callable[[Any], Select[Any]], *,
        filters: views.UnitFilters | None = None, lean: bool = False, **extra: Any,
    ) -> CursorResult[Any]:  # fmt: skip
        """Run `build(state subquery)` for `purpose`, compiled once per shape."""
        filters = self.request.filters if filters is None else filters
        key = (purpose, lean, *self.base, views.state_shape(self.campaign, filters))
        connection = await self.session.connection()
        found = _statements.get(key)
        if found is None:
            s = _state_subquery(
                self.request, self.campaign, self.now, lean=lean, filters=filters, bind=_DEFERRED
            )
            compiled = build(s).compile(dialect=connection.dialect)
            found = _statements[key] = (str(compiled), dict(compiled.params))
        text, constants = found
        params = views.state_params(
            self.campaign, now=self.now, scope_on=views.scope_day(self.campaign, self.now),
            filters=filters,
        )  # fmt: skip
        return await connection.exec_driver_sql(text, {**constants, **params, **extra})


def _listed(s: Any, kind: ReportKind) -> ColumnElement[bool]:
    """Return the condition a row of `kind` meets: on certification alone where it is equivalent.

    Certified or late is exactly "has a certification counting for the campaign", so the two
    public lists test the join's key (an anti-join the planner can drive from an index) instead
    of evaluating every unit's state first.
    """
    match kind:
        case ReportKind.NOT_COMPLETED:
            return s.c.certified_unit_id.is_(None)  # type: ignore[no-any-return]
        case ReportKind.COMPLETED:
            return s.c.certified_unit_id.is_not(None)  # type: ignore[no-any-return]
        case ReportKind.ELIGIBLE:  # certified, in time
            return s.c.certified_at < s.c.deadline_at  # type: ignore[no-any-return]


def _order(s: Any, request: ReportRequest) -> list[ColumnElement[Any]]:
    def folded(column: Any) -> ColumnElement[Any]:
        return func.ictc_fold(func.coalesce(column, "")).collate("C")

    keys: list[ColumnElement[Any]]
    match request.sort:
        case SortKey.NAME:
            keys = [s.c.name_folded.collate("C"), s.c.name.collate("C")]
        case SortKey.CODE:
            keys = []
        case SortKey.TYPE:
            keys = [folded(s.c.unit_type)]
        case SortKey.DIRECTORATE:
            keys = [folded(s.c.directorate_name)]
        case SortKey.REGION:
            keys = [folded(s.c.region_name)]
        case SortKey.STATE:
            keys = [s.c.state.collate("C")]
        case SortKey.CERTIFIED_AT:
            keys = [s.c.certified_at]
        case SortKey.LAST_CHANGE_AT:
            keys = [s.c.last_change_at]
        case SortKey.ITEMS:
            keys = [s.c.item_count]
    ordered: list[ColumnElement[Any]] = [
        k.desc().nulls_last() if request.is_descending else k.asc().nulls_last() for k in keys
    ]
    # The unit code breaks every tie: a total order, so pages and rebuilt reports are stable.
    code = s.c.unit_id.collate("C")
    ordered.append(code.desc() if request.is_descending and request.sort is SortKey.CODE else code)
    if request.sort not in (SortKey.NAME, SortKey.CODE):
        ordered.insert(len(ordered) - 1, s.c.name_folded.collate("C"))
    return ordered


def _row(row: Any) -> ReportRow:
    return ReportRow(
        unit_id=row.unit_id,
        name=row.name,
        unit_type=row.unit_type,
        region_id=row.region_id,
        region_name=row.region_name,
        directorate_id=row.directorate_id,
        directorate_name=row.directorate_name,
        state=ComplianceState(row.state),
        deadline_on=last_day_before(row.deadline_at),
        certified_at=row.certified_at,
        has_initial_inventory=row.first_certified_at is not None,
        last_change_at=row.last_change_at,
        item_count=row.item_count,
        in_use_count=row.in_use_count,
        pending_transfers=row.pending_transfers,
        absorbed_unit_ids=row.absorbed_unit_ids,
    )


def _counts_select(s: Any) -> Select[Any]:
    is_completed = _listed(s, ReportKind.COMPLETED)
    return select(
        s.c.region_id,
        s.c.region_name,
        s.c.directorate_id,
        s.c.directorate_name,
        func.count().filter(is_completed).label("completed"),
        func.count().filter(~is_completed).label("not_completed"),
    ).group_by(s.c.region_id, s.c.region_name, s.c.directorate_id, s.c.directorate_name)


def _totals_select(s: Any) -> Select[Any]:
    group = (s.c.region_id, s.c.region_name, s.c.directorate_id, s.c.directorate_name)
    return select(*group, func.count().label("total")).group_by(*group)


# The campaign's certified units as an array: the units are then read by their key, one index
# probe each, where a join on the certifications had PostgreSQL scan every unit (7 ms).
_CERTIFIED_UNIT_IDS = func.ARRAY(
    select(views.unit_campaigns_view.c.unit_id)
    .where(views.unit_campaigns_view.c.campaign_id == bindparam("campaign_id", type_=String()))
    .scalar_subquery()
)


def _completed_select(s: Any) -> Select[Any]:
    return _totals_select(s).where(
        _listed(s, ReportKind.COMPLETED), s.c.unit_id == any_(_CERTIFIED_UNIT_IDS)
    )


def totals_key(campaign: Campaign, now: datetime, filters: views.UnitFilters) -> Hashable:
    """Return what the units in scope per group depend on, besides the unit directory."""
    return (campaign.scope_kind, campaign.scope_value, views.scope_day(campaign, now), filters)


async def _group_rows(
    statements: _Statements, totals: MutableMapping[Hashable, Totals] | None
) -> list[tuple[str | None, str | None, str | None, str | None, int, int]]:
    """Return per group its ids, names, completed and not completed units.

    With `totals` (kept by `compliance.report_memo.TreeMemo` under the unit directory's mark),
    the units in scope per group are read once per filter; each request then counts only the
    certified ones, a scan of the campaign's certifications instead of every unit.
    """
    if totals is None:
        rows = await statements.execute("counts", _counts_select, lean=True)
        return [(*r[:4], r.completed, r.not_completed) for r in rows]
    key = totals_key(statements.campaign, statements.now, statements.request.filters)
    kept = totals.get(key)
    if kept is None:
        result = await statements.execute("totals", _totals_select, lean=True)
        kept = totals[key] = tuple(
            (r.region_id, r.region_name, r.directorate_id, r.directorate_name, r.total)
            for r in result
        )
    completed = {
        (r.region_id, r.directorate_id): r.total
        for r in await statements.execute("completed", _completed_select, lean=True)
    }
    grouped = []
    for region_id, region_name, directorate_id, directorate_name, total in kept:
        done = completed.get((region_id, directorate_id), 0)
        grouped.append(
            (region_id, region_name, directorate_id, directorate_name, done, total - done)
        )
    return grouped


async def _counts(
    statements: _Statements, totals: MutableMapping[Hashable, Totals] | None = None
) -> tuple[tuple[GroupCount, ...], tuple[GroupCount, ...], int, int]:
    directorates: list[GroupCount] = []
    regions: dict[str | None, GroupCount] = {}
    for (
        region_id,
        region_name,
        directorate_id,
        directorate_name,
        done,
        not_done,
    ) in await _group_rows(statements, totals):
        directorates.append(GroupCount(directorate_id, directorate_name, region_id, done, not_done))
        region = regions.get(region_id) or GroupCount(region_id, region_name, region_id, 0, 0)
        regions[region_id] = replace(
            region,
            completed=region.completed + done,
            not_completed=region.not_completed + not_done,
        )

    def order(count: GroupCount) -> tuple[bool, tuple[str, str], str]:
        return (count.name is None, sort_key(count.name or ""), count.group_id or "")

    completed = sum(d.completed for d in directorates)
    not_completed = sum(d.not_completed for d in directorates)
    return (
        tuple(sorted(regions.values(), key=order)),
        tuple(sorted(directorates, key=order)),
        completed,
        not_completed,
    )


def _local_time_sql(column: str) -> str:
    """Return SQL writing `local_time(column)` as a JSON value: Athens time with its offset."""
    local = f"timezone('Europe/Athens', {column})"
    offset = f"({local} - timezone('UTC', {column}))"
    return (
        f"CASE WHEN {column} IS NULL THEN 'null' ELSE '\"'"
        f" || to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN {offset} >= interval '0' THEN '+' ELSE '' END"
        f" || to_char({offset}, 'HH24:MI')"
        f" || CASE WHEN extract(second FROM {offset}) = 0 THEN ''"
        f" ELSE to_char({offset}, ':SS') END || '\"' END"
    )


def _string_sql(column: str) -> str:
    return f"coalesce(to_json({column})::text, 'null')"


# One unit of `render_json`'s "units", as PostgreSQL writes it from the full state subquery "s":
# the same keys, order, escapes and separators as `json.dumps(_row_json(row), ensure_ascii=False,
# separators=(",", ":"))`, so a long list costs no Python object per row.
_ROW_JSON_SQL = " || ".join(
    (
        "'{\"unit_id\":' || " + _string_sql("s.unit_id"),
        "',\"name\":' || " + _string_sql("s.name"),
        "',\"unit_type\":' || " + _string_sql("s.unit_type"),
        "',\"region_id\":' || " + _string_sql("s.region_id"),
        "',\"region_name\":' || " + _string_sql("s.region_name"),
        "',\"directorate_id\":' || " + _string_sql("s.directorate_id"),
        "',\"directorate_name\":' || " + _string_sql("s.directorate_name"),
        "',\"state\":' || " + _string_sql("s.state"),
        "',\"deadline_on\":\"' || to_char(timezone('Europe/Athens',"
        " CAST(s.deadline_at AS timestamptz) - interval '1 microsecond'), 'YYYY-MM-DD') || '\"'",
        "',\"certified_at\":' || " + _local_time_sql("s.certified_at"),
        "',\"has_initial_inventory\":'"
        " || CASE WHEN s.first_certified_at IS NULL THEN 'false' ELSE 'true' END",
        "',\"last_change_at\":' || " + _local_time_sql("s.last_change_at"),
        "',\"item_count\":' || s.item_count::text",
        "',\"in_use_count\":' || s.in_use_count::text",
        "',\"pending_transfers\":' || s.pending_transfers::text",
        "',\"absorbed_unit_ids\":'"
        " || coalesce(to_json(string_to_array(NULLIF(s.absorbed_unit_ids, ''), ','))::text, '[]')",
        "'}'",
    )
)


def _full_rows(s: Any, *, as_json: bool) -> Select[Any]:
    return select(literal_column(_ROW_JSON_SQL, Text).label("row_json")) if as_json else select(s)


def _rows(
    result: CursorResult[Any], *, as_json: bool
) -> tuple[tuple[ReportRow, ...], tuple[str, ...] | None]:
    if as_json:
        return (), tuple(result.scalars())
    return tuple(_row(r) for r in result), None


async def build_report(
    session: AsyncSession,
    request: ReportRequest,
    *,
    now: datetime,
    choices: TreeChoices | None = None,
    campaign: Campaign | None = None,
    totals: MutableMapping[Hashable, Totals] | None = None,
    rows_as_json: bool = False,
) -> Report:
    """Compute a report (counts and one page of rows, or every row) from the projection.

    `choices` (the unit types) and `campaign` (the one `request` asks for, as `resolve_campaign`
    gives it) as kept by a `compliance.report_memo.TreeMemo`; read if None. `totals`: the units
    in scope per group and filter kept by the same memo under the unit directory's mark (counts
    then read only the certified units); the counts come from one query if None.
    `rows_as_json`: the rows come as `Report.rows_json` (for `render_json` only).

    Counts and the choice of a page's units read the lean form of the units' state (the unit
    directory and the campaign's certifications, the page an index scan in name order); only the
    rows shown are read in full.
    """
    if campaign is None:
        campaign = await resolve_campaign(session, request.campaign_id, now)
    statements = _Statements(session, request, campaign, now)
    regions, directorates, completed, not_completed = await _counts(statements, totals)
    kind, as_json = request.kind, rows_as_json
    rows: tuple[ReportRow, ...] = ()
    rows_json: tuple[str, ...] | None = () if rows_as_json else None
    if request.per_page is None:
        result = await statements.execute(
            f"rows json={as_json}",
            lambda s: (
                _full_rows(s, as_json=as_json)
                .select_from(s)
                .where(_listed(s, kind))
                .order_by(*_order(s, request))
            ),
        )
        rows, rows_json = _rows(result, as_json=as_json)
    else:
        page = await statements.execute(
            "page",
            lambda s: (
                select(s.c.unit_id)
                .where(_listed(s, kind))
                .order_by(*_order(s, request))
                .limit(bindparam("page_limit", type_=Integer))
                .offset(bindparam("page_offset", type_=Integer))
            ),
            lean=True,
            page_limit=request.per_page,
            page_offset=(request.page - 1) * request.per_page,
        )
        unit_ids = tuple(page.scalars())
        if unit_ids:
            result = await statements.execute(
                f"page rows json={as_json}",
                lambda s: (
                    _full_rows(s, as_json=as_json).select_from(s).order_by(*_order(s, request))
                ),
                filters=views.UnitFilters(unit_ids=unit_ids),
            )
            rows, rows_json = _rows(result, as_json=as_json)
    if kind is ReportKind.COMPLETED:
        matching = completed
    elif kind is ReportKind.NOT_COMPLETED:
        matching = not_completed
    else:
        counted = await statements.execute(
            "matching",
            lambda s: select(func.count()).select_from(s).where(_listed(s, kind)),
            lean=True,
        )
        matching = counted.scalar_one()
    return Report(
        request=request,
        campaign=campaign,
        generated_at=now,
        completed=completed,
        not_completed=not_completed,
        regions=regions,
        directorates=directorates,
        matching=matching,
        rows=rows,
        unit_types=choices.unit_types if choices is not None else await unit_types(session),
        rows_json=rows_json,
    )


# ---------------------------------------------------------------------------------------------
# Formats


def local_time(instant: datetime | None) -> str | None:
    """Return an instant as Athens local time with its offset (ISO 8601), or None."""
    return None if instant is None else instant.astimezone(ATHENS).isoformat(timespec="seconds")


def _display_time(instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(ATHENS).strftime("%d/%m/%Y %H:%M")


def _row_json(row: ReportRow) -> dict[str, Any]:
    return {
        "unit_id": row.unit_id,
        "name": row.name,
        "unit_type": row.unit_type,
        "region_id": row.region_id,
        "region_name": row.region_name,
        "directorate_id": row.directorate_id,
        "directorate_name": row.directorate_name,
        "state": row.state.value,
        "deadline_on": row.deadline_on.isoformat(),
        "certified_at": local_time(row.certified_at),
        "has_initial_inventory": row.has_initial_inventory,
        "last_change_at": local_time(row.last_change_at),
        "item_count": row.item_count,
        "in_use_count": row.in_use_count,
        "pending_transfers": row.pending_transfers,
        "absorbed_unit_ids": row.absorbed_unit_ids.split(",") if row.absorbed_unit_ids else [],
    }


def _count_json(count: GroupCount) -> dict[str, Any]:
    return {
        "id": count.group_id,
        "name": count.name,
        "region_id": count.region_id,
        "completed": count.completed,
        "not_completed": count.not_completed,
        "total": count.total,
    }


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    """Return a campaign as JSON-ready data."""
    return {
        "campaign_id": campaign.campaign_id,
        "title": campaign.title,
        "is_regular": campaign.is_regular,
        "opens_at": local_time(campaign.opens_at),
        "deadline_at": local_time(campaign.deadline_at),
        "deadline_on": campaign.last_day.isoformat(),
        "closes_at": local_time(campaign.closes_at),
        "scope_kind": campaign.scope_kind.value,
        "scope_value": campaign.scope_value,
        "extensions": [
            {
                "scope_kind": e.scope_kind.value,
                "scope_id": e.scope_id,
                "deadline_at": local_time(e.deadline_at),
                "deadline_on": last_day_before(e.deadline_at).isoformat(),
            }
            for e in campaign.extensions
        ],
    }


def _filters_json(request: ReportRequest) -> dict[str, Any]:
    f = request.filters
    return {
        "region": f.region_id,
        "directorate": f.directorate_id,
        "unit_type": f.unit_type,
        "code": f.unit_code,
        "q": f.search,
        "sort": request.sort.value,
        "order": "desc" if request.is_descending else "asc",
    }


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render_json(report: Report) -> bytes:
    """Return the report as JSON (UTF-8, Greek as is)."""
    document = {
        "report": report.request.kind.value,
        "title": report.request.kind.heading,
        "campaign": campaign_json(report.campaign),
        "generated_at": local_time(report.generated_at),
        "filters": _filters_json(report.request),
        "totals": {
            "completed": report.completed,
            "not_completed": report.not_completed,
            "total": report.completed + report.not_completed,
            "matching": report.matching,
        },
        "counts": {
            "regions": [_count_json(c) for c in report.regions],
            "directorates": [_count_json(c) for c in report.directorates],
        },
        "page": report.request.page if report.request.per_page else None,
        "per_page": report.request.per_page,
    }
    head = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    units = (
        report.rows_json
        if report.rows_json is not None
        else [
            json.dumps(_row_json(r), ensure_ascii=False, separators=(",", ":")) for r in report.rows
        ]
    )
    # "units" last, as one list of objects: the head without its closing brace, then the rows.
    return f'{head[:-1]},"units":[{",".join(units)}]}}'.encode()


CSV_HEADER = (
    "Κωδικός",
    "Ονομασία",
    "Τύπος",
    "Περιφερειακή Διεύθυνση",
    "Διεύθυνση",
    "Κατάσταση",
    "Προθεσμία",
    "Οριστικοποίηση",
    "Αρχική απογραφή",
    "Τελευταία μεταβολή",
    "Είδη",
    "Σε χρήση",
    "Εκκρεμείς μεταφορές",
)


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def _csv_values(row: ReportRow) -> tuple[Any, ...]:
    return (
        row.unit_id,
        row.name,
        row.unit_type,
        row.region_name or "",
        row.directorate_name or "",
        STATE_LABELS[row.state],
        row.deadline_on.isoformat(),
        _display_time(row.certified_at),
        "ΝΑΙ" if row.has_initial_inventory else "ΟΧΙ",
        _display_time(row.last_change_at),
        row.item_count,
        row.in_use_count,
        row.pending_transfers,
    )


async def csv_chunks(
    session: AsyncSession, request: ReportRequest, *, now: datetime
) -> AsyncIterator[bytes]:
    """Yield the report as CSV, UTF-8 with a BOM (so Excel reads Greek), row batches at a time."""
    campaign = await resolve_campaign(session, request.campaign_id, now)
    s = _state_subquery(request, campaign, now)
    query = select(s).where(_listed(s, request.kind)).order_by(*_order(s, request))
    yield ("\ufeff" + _csv_line(CSV_HEADER)).encode("utf-8")
    result = await session.stream(query.execution_options(yield_per=CSV_BATCH))
    async for partition in result.partitions(CSV_BATCH):
        yield "".join(_csv_line(_csv_values(_row(r))) for r in partition).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;
max-width:80rem;padding:.5rem 1rem;color:#111;line-height:1.4}
h1{font-size:1.35rem;margin:.4rem 0}p.meta{color:#444;margin:.2rem 0 .8rem}
form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.5rem 0;padding:.5rem;
background:#f3f5f7;border:1px solid #d8dde3}
label{display:flex;flex-direction:column;font-size:.85rem;min-width:9rem;flex:1 1 9rem}
input,select,button{font:inherit;padding:.3rem}button{cursor:pointer}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
.totals{display:flex;gap:1rem;flex-wrap:wrap;margin:.5rem 0}
.totals div{border:1px solid #d8dde3;padding:.4rem .7rem}
nav a{margin-right:.8rem}
@media (max-width:40rem){table.units thead{display:none}table.units tr{display:block;
border-bottom:2px solid #ccc;padding:.3rem 0}table.units td{display:block;border:0;padding:.1rem}
table.units td[data-label]::before{content:attr(data-label) ": ";font-weight:600}
table.counts{table-layout:fixed;font-size:.85rem}table.counts th,table.counts td{
overflow-wrap:anywhere;hyphens:auto;padding:.25rem .2rem}table.counts th:first-child{width:40%}}
@media print{form,nav,.pages{display:none}body{max-width:none}details{display:block}
details>*{display:block}a{color:inherit;text-decoration:none}}
"""


def _select(name: str, label: str, options: Sequence[tuple[str, str]], chosen: str | None) -> str:
    items = ['<option value="">— όλες —</option>']
    for value, text in options:
        selected = " selected" if value == chosen else ""
        items.append(f'<option value="{escape(value)}"{selected}>{escape(text)}</option>')
    return f'<label>{escape(label)}<select name="{name}">{"".join(items)}</select></label>'


def _query_string(request: ReportRequest, **changes: Any) -> str:
    f = request.filters
    params = {
        "campaign": request.campaign_id,
        "region": f.region_id,
        "directorate": f.directorate_id,
        "unit_type": f.unit_type,
        "code": f.unit_code,
        "q": f.search,
        "sort": request.sort.value,
        "order": "desc" if request.is_descending else "asc",
        "page": request.page,
    } | changes
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _counts_table(title: str, counts: Sequence[GroupCount], *, is_open: bool) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.name or '—')}</td><td class=n>{c.completed}</td>"
        f"<td class=n>{c.not_completed}</td><td class=n>{c.total}</td></tr>"
        for c in counts
    )
    return (
        f"<details{' open' if is_open else ''}><summary>{escape(title)}</summary>"
        '<table class="counts"><thead><tr><th></th><th>Ολοκλήρωσαν</th><th>Δεν ολοκλήρωσαν</th>'
        "<th>Σύνολο</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _units_table(report: Report, base: str) -> str:
    columns = (
        (SortKey.CODE, "Κωδικός"),
        (SortKey.NAME, "Ονομασία"),
        (SortKey.TYPE, "Τύπος"),
        (SortKey.DIRECTORATE, "Διεύθυνση"),
        (SortKey.STATE, "Κατάσταση"),
        (SortKey.CERTIFIED_AT, "Οριστικοποίηση"),
        (SortKey.LAST_CHANGE_AT, "Τελευταία μεταβολή"),
        (SortKey.ITEMS, "Είδη"),
    )
    request = report.request
    heads = []
    for key, label in columns:
        is_desc = request.sort is key and not request.is_descending
        link = _query_string(request, sort=key.value, order="desc" if is_desc else "asc", page=1)
        arrow = (" ↓" if request.is_descending else " ↑") if request.sort is key else ""
        heads.append(f'<th><a href="{base}.html?{escape(link)}">{label}</a>{arrow}</th>')
    body = []
    for row in report.rows:
        absorbed = (
            f" <small>(+{escape(row.absorbed_unit_ids)})</small>" if row.absorbed_unit_ids else ""
        )
        initial = "" if row.has_initial_inventory else " <small>(χωρίς αρχική απογραφή)</small>"
        pending = (
            f" <small>({row.pending_transfers} εκκρ. μεταφορές)</small>"
            if row.pending_transfers
            else ""
        )
        body.append(
            "<tr>"
            f'<td data-label="Κωδικός">{escape(row.unit_id)}</td>'
            f'<td data-label="Ονομασία">{escape(row.name)}{absorbed}</td>'
            f'<td data-label="Τύπος">{escape(row.unit_type)}</td>'
            f'<td data-label="Διεύθυνση">{escape(row.directorate_name or "—")}</td>'
            f'<td data-label="Κατάσταση">{escape(STATE_LABELS[row.state])}{initial}{pending}</td>'
            f'<td data-label="Οριστικοποίηση">{_display_time(row.certified_at)}</td>'
            f'<td data-label="Τελευταία μεταβολή">{_display_time(row.last_change_at)}</td>'
            f'<td data-label="Είδη" class=n>{row.item_count}</td>'
            "</tr>"
        )
    return (
        f'<table class="units"><thead><tr>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _pages(report: Report, base: str) -> str:
    per_page = report.request.per_page
    if not per_page or report.matching <= per_page:
        return ""
    last = (report.matching + per_page - 1) // per_page
    page = report.request.page
    links = []
    if page > 1:
        previous = escape(_query_string(report.request, page=page - 1))
        links.append(f'<a href="{base}.html?{previous}">« προηγούμενη</a>')
    links.append(f"σελίδα {page} από {last}")
    if page < last:
        following = escape(_query_string(report.request, page=page + 1))
        links.append(f'<a href="{base}.html?{following}">επόμενη »</a>')
    return f'<p class="pages">{" · ".join(links)}</p>'


def render_html(report: Report, *, base: str, regions: Sequence[tuple[str, str]],
                directorates: Sequence[tuple[str, str]]) -> str:  # fmt: skip
    """Return the report as a plain HTML page: a GET form for filters, counts, one page of rows."""
    request = report.request
    f = request.filters
    campaign = report.campaign
    other = (
        ReportKind.COMPLETED
        if request.kind is ReportKind.NOT_COMPLETED
        else ReportKind.NOT_COMPLETED
    )
    other_base = base.rsplit("/", 1)[0] + "/" + other.value
    sort_options = [
        (SortKey.NAME.value, "Ονομασία"), (SortKey.CODE.value, "Κωδικός"),
        (SortKey.TYPE.value, "Τύπος"), (SortKey.DIRECTORATE.value, "Διεύθυνση"),
        (SortKey.REGION.value, "Περιφέρεια"), (SortKey.STATE.value, "Κατάσταση"),
        (SortKey.CERTIFIED_AT.value, "Οριστικοποίηση"),
        (SortKey.LAST_CHANGE_AT.value, "Τελευταία μεταβολή"), (SortKey.ITEMS.value, "Είδη"),
    ]  # fmt: skip
    order = "desc" if request.is_descending else "asc"
    hidden = (
        f'<input type="hidden" name="campaign" value="{escape(request.campaign_id)}">'
        if request.campaign_id
        else ""
    )
    sort_select = _select("sort", "Ταξινόμηση", sort_options, request.sort.value)
    order_select = _select("order", "Σειρά", [("asc", "Αύξουσα"), ("desc", "Φθίνουσα")], order)
    code = escape(f.unit_code or "")
    search = escape(f.search or "")
    form = (
        f'<form method="get" action="{base}.html">{hidden}'
        + _select("region", "Περιφερειακή Διεύθυνση", regions, f.region_id)
        + _select("directorate", "Διεύθυνση", directorates, f.directorate_id)
        + _select("unit_type", "Τύπος μονάδας", [(t, t) for t in report.unit_types], f.unit_type)
        + f'<label>Κωδικός<input name="code" inputmode="numeric" value="{code}"></label>'
        + f'<label>Αναζήτηση<input name="q" type="search" value="{search}"></label>'
        + sort_select.replace('<option value="">— όλες —</option>', "", 1)
        + order_select.replace('<option value="">— όλες —</option>', "", 1)
        + "<button>Εφαρμογή</button></form>"
    )
    query = _query_string(request, page=None)
    deadline = campaign.last_day.strftime("%d/%m/%Y")
    return (
        "<!doctype html><html lang=el><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(request.kind.heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(request.kind.heading)}</h1>"
        f'<p class="meta">{escape(campaign.title)} · προθεσμία έως {deadline} · '
        f"ενημέρωση {_display_time(report.generated_at)}</p>"
        f'<nav><a href="{other_base}.html">{escape(other.heading)}</a>'
        f'<a href="{base}.csv?{escape(query)}">CSV</a>'
        f'<a href="{base}.json?{escape(query)}">JSON</a></nav>' + form + '<div class="totals">'
        f"<div>Ολοκλήρωσαν: <b>{report.completed}</b></div>"
        f"<div>Δεν ολοκλήρωσαν: <b>{report.not_completed}</b></div>"
        f"<div>Στη λίστα: <b>{report.matching}</b></div></div>"
        + _counts_table("Ανά Περιφερειακή Διεύθυνση", report.regions, is_open=True)
        + _counts_table("Ανά Διεύθυνση", report.directorates, is_open=False)
        + _units_table(report, base)
        + _pages(report, base)
        + "</body></html>"
    )


__all__ = [
    "Report",
    "ReportKind",
    "ReportRequest",
    "ReportRow",
    "SortKey",
    "UnknownCampaignError",
    "build_report",
    "campaign_json",
    "chosen_campaign_id",
    "csv_chunks",
    "region_and_directorate_options",
    "render_html",
    "render_json",
    "resolve_campaign",
]
