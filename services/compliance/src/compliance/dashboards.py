"""Dashboards for directorates and regions: completion rates, days left, units at risk, trend.

Why this exists: during a window a directorate must see which of its schools have not even
started, how its rate compares across unit types and with past campaigns, and export that for its
own follow-up. The numbers come from the same projection and the same state rule as the public
reports (`compliance.views.unit_state_select`), so the two never disagree.

Usage::

    board = await build_dashboard(session, scope, campaign, now=now)
    render_dashboard_json(board) / render_dashboard_html(board) / render_dashboard_xlsx(board)

Notes: "at risk" is a unit in scope that has recorded no change since the campaign opened and
whose deadline has not passed (not started); the trend is the share certified in time in each of
the last regular windows, with the scope as it stood on each window's last day.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from compliance import views
from compliance.reports import campaign_json, local_time
from compliance.windows import Campaign, days_left, last_day_before, previous_windows
from shared.clock import athens_date
from shared.events.compliance import ComplianceState
from shared.greek import sort_key

TREND_CAMPAIGNS = 6
AT_RISK_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose dashboard: a region, a directorate, or every unit (`all`)."""

    kind: str  # "region", "directorate" or "all"
    scope_id: str | None
    name: str

    @property
    def filters(self) -> views.UnitFilters:
        """Return the unit filters that select the scope's units."""
        if self.kind == "region":
            return views.UnitFilters(region_id=self.scope_id)
        if self.kind == "directorate":
            return views.UnitFilters(directorate_id=self.scope_id)
        return views.UnitFilters()


@dataclass(frozen=True, slots=True)
class Rate:
    """Completion in one group: certified in time, late, and all units in scope."""

    key: str | None
    name: str
    certified: int
    late: int
    total: int

    @property
    def rate(self) -> float:
        """Return the share certified in time (0 when the group is empty)."""
        return round(self.certified / self.total, 4) if self.total else 0.0


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A unit that has not started, with its deadline."""

    unit_id: str
    name: str
    unit_type: str
    directorate_name: str | None
    deadline_on: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything a dashboard shows."""

    scope: Scope
    campaign: Campaign
    generated_at: datetime
    days_left: int
    overall: Rate
    by_directorate: tuple[Rate, ...]
    by_unit_type: tuple[Rate, ...]
    by_state: dict[str, int]
    at_risk: tuple[AtRisk, ...]
    at_risk_total: int
    trend: tuple[tuple[str, str, Rate], ...]  # (campaign id, title, rate), oldest first


async def find_scope(session: AsyncSession, scope_id: str) -> Scope | None:
    """Return the region or directorate named `scope_id` (or every unit for ``all``), else None."""
    if scope_id == "all":
        return Scope("all", None, "Όλες οι μονάδες")
    unit = views.units_view.c
    for kind, id_column, name_column in (
        ("region", unit.region_id, unit.region_name),
        ("directorate", unit.directorate_id, unit.directorate_name),
    ):
        row = (
            await session.execute(select(name_column).where(id_column == scope_id).limit(1))
        ).first()
        if row is not None:
            return Scope(kind, scope_id, row[0] or scope_id)
    return None


async def _rates(session: AsyncSession, s: Any, key: Any, name: Any) -> tuple[Rate, ...]:
    certified = s.c.state == ComplianceState.CERTIFIED.value
    late = s.c.state == ComplianceState.LATE.value
    rows = await session.execute(
        select(
            key.label("key"),
            name.label("name"),
            func.count().filter(certified).label("certified"),
            func.count().filter(late).label("late"),
            func.count().label("total"),
        ).group_by(key, name)
    )
    rates = [Rate(r.key, r.name or "—", r.certified, r.late, r.total) for r in rows]
    return tuple(sorted(rates, key=lambda r: (sort_key(r.name), r.key or "")))


async def _overall(session: AsyncSession, campaign: Campaign, scope: Scope, now: datetime) -> Rate:
    s = views.unit_state_select(
        campaign, now=now, scope_on=views.scope_day(campaign, now), filters=scope.filters
    ).subquery("s")
    rows = await session.execute(select(s.c.state, func.count()).group_by(s.c.state))
    counts: dict[str, int] = {row[0]: row[1] for row in rows}
    return Rate(
        campaign.campaign_id,
        campaign.title,
        counts.get(ComplianceState.CERTIFIED.value, 0),
        counts.get(ComplianceState.LATE.value, 0),
        sum(counts.values()),
    )


async def build_dashboard(
    session: AsyncSession, scope: Scope, campaign: Campaign, *, now: datetime
) -> Dashboard:
    """Compute a dashboard from the projection."""
    s = views.unit_state_select(
        campaign, now=now, scope_on=views.scope_day(campaign, now), filters=scope.filters
    ).subquery("s")
    by_directorate = await _rates(session, s, s.c.directorate_id, s.c.directorate_name)
    by_unit_type = await _rates(session, s, s.c.unit_type, s.c.unit_type)
    by_state: dict[str, int] = {
        row[0]: row[1]
        for row in await session.execute(
            select(s.c.state, func.count()).group_by(s.c.state).order_by(s.c.state)
        )
    }
    at_risk_query = (
        select(s.c.unit_id, s.c.name, s.c.unit_type, s.c.directorate_name, s.c.deadline_at)
        .where(s.c.state == ComplianceState.NOT_STARTED.value)
        .order_by(s.c.name_folded.collate("C"), s.c.unit_id)
        .limit(AT_RISK_LIMIT)
    )
    at_risk = tuple(
        AtRisk(
            r.unit_id,
            r.name,
            r.unit_type,
            r.directorate_name,
            last_day_before(r.deadline_at).isoformat(),
        )
        for r in await session.execute(at_risk_query)
    )
    trend = []
    for window in reversed(previous_windows(now, TREND_CAMPAIGNS)):
        with_extensions = await views.load_campaign(session, window.campaign_id) or window
        trend.append(
            (window.campaign_id, window.title, await _overall(session, with_extensions, scope, now))
        )
    certified = by_state.get(ComplianceState.CERTIFIED.value, 0)
    late = by_state.get(ComplianceState.LATE.value, 0)
    return Dashboard(
        scope=scope,
        campaign=campaign,
        generated_at=now,
        days_left=days_left(campaign.deadline_at, athens_date(now)),
        overall=Rate(scope.scope_id, scope.name, certified, late, sum(by_state.values())),
        by_directorate=by_directorate,
        by_unit_type=by_unit_type,
        by_state=by_state,
        at_risk=at_risk,
        at_risk_total=by_state.get(ComplianceState.NOT_STARTED.value, 0),
        trend=tuple(trend),
    )


def _rate_json(rate: Rate) -> dict[str, Any]:
    return {
        "id": rate.key,
        "name": rate.name,
        "certified": rate.certified,
        "late": rate.late,
        "total": rate.total,
        "rate": rate.rate,
    }


def dashboard_document(board: Dashboard) -> dict[str, Any]:
    """Return the dashboard as JSON-ready data."""
    return {
        "scope": {"kind": board.scope.kind, "id": board.scope.scope_id, "name": board.scope.name},
        "campaign": campaign_json(board.campaign),
        "generated_at": local_time(board.generated_at),
        "days_left": board.days_left,
        "overall": _rate_json(board.overall),
        "by_state": board.by_state,
        "by_directorate": [_rate_json(r) for r in board.by_directorate],
        "by_unit_type": [_rate_json(r) for r in board.by_unit_type],
        "at_risk_total": board.at_risk_total,
        "at_risk": [
            {
                "unit_id": a.unit_id,
                "name": a.name,
                "unit_type": a.unit_type,
                "directorate_name": a.directorate_name,
                "deadline_on": a.deadline_on,
            }
            for a in board.at_risk
        ],
        "trend": [
            {"campaign_id": cid, "title": title, **_rate_json(rate)}
            for cid, title, rate in board.trend
        ],
    }


def render_dashboard_json(board: Dashboard) -> bytes:
    """Return the dashboard as JSON bytes."""
    return json.dumps(dashboard_document(board), ensure_ascii=False, separators=(",", ":")).encode()


def _bars_svg(rates: tuple[Rate, ...] | list[Rate], *, title: str) -> str:
    """Return a horizontal bar chart of completion rates as inline SVG (no script, printable)."""
    row_height, label_width, bar_width = 22, 260, 300
    height = row_height * len(rates) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" '
        f'viewBox="0 0 {label_width + bar_width + 70} {height}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    ]
    for index, rate in enumerate(rates):
        y = 20 + index * row_height
        width = round(bar_width * rate.rate, 1)
        late = round(bar_width * (rate.late / rate.total if rate.total else 0), 1)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{escape(rate.name[:40])}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{bar_width}" height="16" fill="#e5e8eb"/>'
            f'<rect x="{label_width}" y="{y + 2}" width="{width}" height="16" fill="#2f7d4a"/>'
            f'<rect x="{label_width + width}" y="{y + 2}" width="{late}" height="16"'
            ' fill="#d9a441"/>'
            f'<text x="{label_width + bar_width + 6}" y="{y + 14}" font-size="12">'
            f"{rate.rate * 100:.1f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _rates_table(rates: tuple[Rate, ...], heading: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(r.name)}</td><td class=n>{r.certified}</td><td class=n>{r.late}</td>"
        f"<td class=n>{r.total}</td><td class=n>{r.rate * 100:.1f}%</td></tr>"
        for r in rates
    )
    return (
        f"<h2>{escape(heading)}</h2><table><thead><tr><th></th><th>Εμπρόθεσμα</th>"
        f"<th>Εκπρόθεσμα</th><th>Σύνολο</th><th>Ποσοστό</th></tr></thead><tbody>{rows}</tbody></table>"
    )


_CSS = """
body{font-family:system-ui,"DejaVu Sans",sans-serif;max-width:70rem;margin:0 auto;
padding:.5rem 1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin-bottom:1rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:left}
td.n{text-align:right}.kpi{display:flex;gap:1rem;flex-wrap:wrap}
.kpi div{border:1px solid #ccd;padding:.4rem .8rem}@media print{nav{display:none}}
"""


def render_dashboard_html(board: Dashboard, *, base: str) -> str:
    """Return the dashboard as an HTML page with inline SVG charts."""
    trend_rates = [
        Rate(cid, title, rate.certified, rate.late, rate.total) for cid, title, rate in board.trend
    ]
    at_risk = "".join(
        f"<tr><td>{escape(a.unit_id)}</td><td>{escape(a.name)}</td><td>{escape(a.unit_type)}</td>"
        f"<td>{escape(a.directorate_name or '—')}</td></tr>"
        for a in board.at_risk
    )
    return (
        "<!doctype html><html lang=el><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(board.scope.name)}: απογραφή</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(board.scope.name)}</h1><p>{escape(board.campaign.title)}</p>"
        f'<nav><a href="{base}.json">JSON</a> · <a href="{base}.xlsx">XLSX</a></nav>'
        '<div class="kpi">'
        f"<div>Ποσοστό εμπρόθεσμης ολοκλήρωσης: <b>{board.overall.rate * 100:.1f}%</b></div>"
        f"<div>Ημέρες που απομένουν: <b>{max(board.days_left, 0)}</b></div>"
        f"<div>Μονάδες σε κίνδυνο: <b>{board.at_risk_total}</b></div>"
        f"<div>Μονάδες: <b>{board.overall.total}</b></div></div>"
        "<h2>Ανά Διεύθυνση</h2>"
        + _bars_svg(board.by_directorate, title="Ολοκλήρωση ανά Διεύθυνση")
        + _rates_table(board.by_unit_type, "Ανά τύπο μονάδας")
        + "<h2>Τάση στις τελευταίες απογραφές</h2>"
        + _bars_svg(trend_rates, title="Τάση")
        + _rates_table(board.by_directorate, "Ανά Διεύθυνση (αναλυτικά)")
        + "<h2>Μονάδες σε κίνδυνο (καμία μεταβολή)</h2><table><thead><tr><th>Κωδικός</th>"
        f"<th>Ονομασία</th><th>Τύπος</th><th>Διεύθυνση</th></tr></thead><tbody>{at_risk}</tbody>"
        "</table></body></html>"
    )


def render_dashboard_xlsx(board: Dashboard) -> bytes:
    """Return the dashboard as an XLSX workbook (openpyxl write-only: constant memory)."""
    workbook = Workbook(write_only=True)
    header = ("Ομάδα", "Κωδικός", "Εμπρόθεσμα", "Εκπρόθεσμα", "Σύνολο", "Ποσοστό")
    for title, rates in (
        ("Ανά Διεύθυνση", board.by_directorate),
        ("Ανά τύπο μονάδας", board.by_unit_type),
        ("Τάση", tuple(rate for _, _, rate in board.trend)),
    ):
        sheet = workbook.create_sheet(title)
        sheet.append(header)
        for rate in rates:
            sheet.append((rate.name, rate.key, rate.certified, rate.late, rate.total, rate.rate))
    sheet = workbook.create_sheet("Σε κίνδυνο")
    sheet.append(("Κωδικός", "Ονομασία", "Τύπος", "Διεύθυνση", "Προθεσμία"))
    for unit in board.at_risk:
        sheet.append(
            (unit.unit_id, unit.name, unit.unit_type, unit.directorate_name, unit.deadline_on)
        )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
