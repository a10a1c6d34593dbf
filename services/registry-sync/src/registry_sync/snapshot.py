"""Read a body's table from the registry view: live, or as of a certification.

Why this exists: a push carries the body's whole table, computed when the version is frozen. The
live table groups the current items of every unit that reports to the body (itself and the units
merged into it); a certified table folds `rs_item_history` as of the certification's
`covers_position`, so it lists what the unit certified even if items moved since.

Usage::

    live = await read_body(connection, "0551010", mapping=load_mapping())
    certified = await read_certified(connection, live, "window-2026-12", mapping=load_mapping())
    live.table.rows, certified.basis, certified.certification   # certified: None if it did not
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from registry_sync.mapping import Mapping
from registry_sync.table import ItemFacts, Table, build_table_from_groups, format_instant
from registry_sync.views import bodies, campaigns, certifications, item_history, items
from registry_sync.windows import regular_window_bounds

Basis = Literal["live", "certified"]
BodyStatus = Literal["active", "suspended", "abolished", "merged"]


@dataclass(frozen=True)
class BodySnapshot:
    """What one push of a body says."""

    body_code: str
    body_name: str
    body_status: BodyStatus
    merged_into: str | None
    basis: Basis
    certification: dict[str, Any] | None
    table: Table


async def read_body(
    connection: AsyncConnection, body_code: str, *, mapping: Mapping
) -> BodySnapshot | None:
    """Return the body's live table now, or None if no such body reports."""
    return (await read_live_bodies(connection, [body_code], mapping=mapping)).get(body_code)


async def read_certified(
    connection: AsyncConnection, live: BodySnapshot, campaign_id: str, *, mapping: Mapping
) -> BodySnapshot | None:
    """Return the body's table as of its last certification in the campaign, else None.

    `live` is the body's live snapshot (its name and status are the push's either way).
    """
    if live.body_status == "merged":
        return None
    certification = await _certification_in(connection, live.body_code, campaign_id)
    if certification is None:
        return None
    members = select(bodies.c.unit_id).where(bodies.c.reports_to == live.body_code)
    groups = await _groups_as_of(connection, members, certification["covers_position"])
    return replace(
        live,
        basis="certified",
        certification={
            "certification_id": str(certification["certification_id"]),
            "certified_at": format_instant(certification["certified_at"]),
            "content_hash": certification["content_hash"],
            "item_count": certification["item_count"],
        },
        table=build_table_from_groups(groups, mapping),
    )


_FACTS = ("category_id", "manufacturer", "model", "acquisition_year", "status")


async def read_live_bodies(
    connection: AsyncConnection, body_codes: list[str], *, mapping: Mapping
) -> dict[str, BodySnapshot]:
    """Return the live tables of many bodies at once (two queries, whatever their number)."""
    found = {
        row.unit_id: row
        for row in await connection.execute(select(bodies).where(bodies.c.unit_id.in_(body_codes)))
    }
    member = bodies.alias("member")
    in_bundle = items.c.bundle_item_id.is_not(None).label("in_bundle")
    columns = [items.c[name] for name in _FACTS]
    groups: dict[str, list[tuple[ItemFacts, int]]] = {code: [] for code in found}
    rows = await connection.execute(
        select(member.c.reports_to, *columns, in_bundle, func.count().label("n"))
        .join_from(items, member, member.c.unit_id == items.c.unit_id)
        .where(member.c.reports_to.in_(list(found)))
        .group_by(member.c.reports_to, *columns, in_bundle)
    )
    for row in rows:
        groups[row.reports_to].append((_facts(row), row.n))
    return {
        code: BodySnapshot(
            body_code=code,
            body_name=body.name,
            body_status=body.status,
            merged_into=body.merged_into if body.status == "merged" else None,
            basis="live",
            certification=None,
            table=build_table_from_groups(groups[code], mapping),
        )
        for code, body in found.items()
    }


async def _groups_as_of(
    connection: AsyncConnection, members: Any, position: int
) -> list[tuple[ItemFacts, int]]:
    """Group the items the members held at store position `position`, in their state then."""
    h = item_history
    candidates = (
        select(h.c.item_id)
        .where(h.c.unit_id.in_(members), h.c.position <= position)
        .distinct()
        .subquery()
    )
    latest = (
        select(h)
        .join(candidates, candidates.c.item_id == h.c.item_id)
        .where(h.c.position <= position)
        .order_by(h.c.item_id, h.c.position.desc())
        .distinct(h.c.item_id)
        .subquery()
    )
    columns = [latest.c[name] for name in _FACTS]
    rows = await connection.execute(
        select(*columns, latest.c.in_bundle, func.count().label("n"))
        .where(latest.c.unit_id.in_(members))
        .group_by(*columns, latest.c.in_bundle)
    )
    return [(_facts(row), row.n) for row in rows]


def _facts(row: Any) -> ItemFacts:
    return ItemFacts(
        category_id=row.category_id,
        manufacturer=row.manufacturer,
        model=row.model,
        acquisition_year=row.acquisition_year,
        status=row.status,
        in_bundle=row.in_bundle,
    )


async def certified_in(
    connection: AsyncConnection, body_codes: list[str], campaign_id: str
) -> set[str]:
    """Return which of the bodies certified within the campaign's window (one query)."""
    bounds = await _campaign_bounds(connection, campaign_id)
    if bounds is None or not body_codes:
        return set()
    opens_at, ends_at = bounds
    rows = await connection.execute(
        select(certifications.c.unit_id)
        .where(
            certifications.c.unit_id.in_(body_codes),
            certifications.c.certified_at >= opens_at,
            certifications.c.certified_at < ends_at,
        )
        .distinct()
    )
    return set(rows.scalars())


async def _campaign_bounds(
    connection: AsyncConnection, campaign_id: str
) -> tuple[datetime, datetime] | None:
    """Return (opens_at, end) of a regular window or a known ad-hoc campaign, else None."""
    bounds = regular_window_bounds(campaign_id)
    if bounds is None:
        known = (
            await connection.execute(
                select(campaigns).where(campaigns.c.campaign_id == campaign_id)
            )
        ).one_or_none()
        if known is None or known.opens_at is None:
            return None
        end = known.closed_at or known.deadline_at
        bounds = (known.opens_at, end) if end is not None else None
    return bounds


async def _certification_in(
    connection: AsyncConnection, body_code: str, campaign_id: str
) -> dict[str, Any] | None:
    """Return the body's last certification within the campaign's window, else None."""
    bounds = await _campaign_bounds(connection, campaign_id)
    if bounds is None:
        return None
    opens_at, ends_at = bounds
    row = (
        await connection.execute(
            select(certifications)
            .where(
                and_(
                    certifications.c.unit_id == body_code,
                    certifications.c.certified_at >= opens_at,
                    certifications.c.certified_at < ends_at,
                )
            )
            .order_by(certifications.c.certified_at.desc())
            .limit(1)
        )
    ).one_or_none()
    return dict(row._mapping) if row is not None else None
