"""Authorization: who may do what where, from a local projection of `units.events`.

Why this exists: every service must answer "may user U do action A on unit X" on each request, fast
and without calling the units service (ARCHITECTURE.md §2: services share no database and must keep
working when another is down). So each service keeps, in its own database, a projection of the unit
tree and of the grants, folded from `units.events` by its projector, and asks it here.

Usage::

    # worker.py: a projection of its own, so it can be rebuilt on its own (shared.consumer)
    Projection("equipment.authz", [settings.units_topic], apply=authz.apply,
               metadata=authz.metadata)
    # migrations: include `authz.metadata` in Alembic's target (or `await create_tables(conn)`)
    # a handler or dependency:
    await require(session, principal, Action.RECORD_EQUIPMENT, unit_id)   # 403 Problem if not

Rules:
- Unit roles are not hierarchical: recording equipment needs `entry`; changing its status, moving
  and transferring it need `manage`; certifying the inventory needs `certify`; reading needs any of
  them, or the global role `auditor`, `helpdesk` or `ministry_admin`.
- A recursive grant covers the unit and every unit below it; a plain one covers the unit alone.
- A unit merged into another hands its grants to it: they cover the absorbing unit (and, if
  recursive, its subtree). Units still hanging under a merged unit count as under the absorbing one.
- Suspended, abolished and merged units are read-only: only `read` is ever allowed on them, except
  that a ministry administrator may still manage their grants (to revoke stale access).
- Granting roles on a unit needs a recursive `manage` grant covering it, or `ministry_admin`.
- A unit this projection has not seen is covered by no unit grant; global roles still apply.

Notes:
- The tree is walked with recursive CTEs over an "effective parent" (the unit merged into, else
  the parent): upward for `may` (a handful of indexed lookups: the tree is ~5 levels deep),
  downward from the granted units for `units_user_may_act_on`. Upward walks stop after
  `MAX_DEPTH` steps and the downward one deduplicates, so a cycle in bad data can make an answer
  wrong but never hang a request.
- `apply` trusts the order the projector guarantees (per-stream order, each event once); every write
  is an upsert or an idempotent update, so applying the same event twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.auth import Principal
from shared.db import NAMING_CONVENTION
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.units import (
    GlobalRole,
    GlobalRoleGranted,
    GlobalRoleRevoked,
    RoleGranted,
    RoleRevoked,
    UnitAbolished,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitReparented,
    UnitRole,
    UnitSuspended,
)
from shared.problems import Problem

MAX_DEPTH = 64

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UnitStatus(StrEnum):
    """Where a unit stands in its life; only active units take changes."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    ABOLISHED = "abolished"
    MERGED = "merged"


units_view = Table(
    "authz_units_view",
    metadata,
    Column("unit_id", String(32), primary_key=True),
    Column("parent_id", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("merged_into", String(32), nullable=True),
    CheckConstraint(
        "status IN ('active', 'suspended', 'abolished', 'merged')", name="status_known"
    ),
    # No foreign keys: grants and units arrive on different Kafka partitions (different streams),
    # so a grant may be projected before the unit it names.
)
# The step every tree walk takes: a merged unit's children and grants belong to the absorbing unit.
Index(
    "ix_authz_units_view_effective_parent",
    func.coalesce(units_view.c.merged_into, units_view.c.parent_id),
)
Index(
    "ix_authz_units_view_merged_into",
    units_view.c.merged_into,
    postgresql_where=units_view.c.merged_into.is_not(None),
)

grants_view = Table(
    "authz_grants_view",
    metadata,
    Column("user_id", String(256), primary_key=True),
    Column("unit_id", String(32), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("is_recursive", Boolean, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("role IN ('entry', 'manage', 'certify')", name="role_known"),
)
Index("ix_authz_grants_view_unit_id", grants_view.c.unit_id)

global_roles_view = Table(
    "authz_global_roles_view",
    metadata,
    Column("user_id", String(256), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("granted_at", DateTime(timezone=True), nullable=False),
)


async def create_tables(conn: AsyncConnection) -> None:
    """Create the projection's tables and indexes if they do not exist."""
    await conn.run_sync(metadata.create_all)


# ---------------------------------------------------------------------------------------------
# Folding units.events


async def apply(event: Event | RecordedEvent, session: AsyncSession) -> None:
    """Fold one units event into the projection. Applying it twice changes nothing."""
    if isinstance(event, RecordedEvent):
        event = event.event()
    match event:
        case UnitRegistered():
            # DO NOTHING, not UPDATE: a redelivered registration must not undo a later re-parenting.
            await session.execute(
                insert(units_view)
                .values(
                    unit_id=event.unit_id,
                    parent_id=event.parent_id,
                    status=UnitStatus.ACTIVE.value,
                    merged_into=None,
                )
                .on_conflict_do_nothing(index_elements=[units_view.c.unit_id])
            )
        case UnitReparented():
            await _update_unit(session, event.unit_id, parent_id=event.to_parent_id)
        case UnitSuspended():
            await _update_unit(session, event.unit_id, status=UnitStatus.SUSPENDED.value)
        case UnitReactivated():
            await _update_unit(session, event.unit_id, status=UnitStatus.ACTIVE.value)
        case UnitAbolished():
            await _update_unit(session, event.unit_id, status=UnitStatus.ABOLISHED.value)
        case UnitMerged():
            await _update_unit(
                session,
                event.unit_id,
                status=UnitStatus.MERGED.value,
                merged_into=event.into_unit_id,
            )
        case RoleGranted():
            statement = insert(grants_view).values(
                user_id=event.user_id,
                unit_id=event.unit_id,
                role=event.role.value,
                is_recursive=event.is_recursive,
                granted_at=event.granted_at,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[
                        grants_view.c.user_id,
                        grants_view.c.unit_id,
                        grants_view.c.role,
                    ],
                    set_={
                        "is_recursive": statement.excluded.is_recursive,
                        "granted_at": statement.excluded.granted_at,
                    },
                )
            )
        case RoleRevoked():
            await session.execute(
                grants_view.delete().where(
                    grants_view.c.user_id == event.user_id,
                    grants_view.c.unit_id == event.unit_id,
                    grants_view.c.role == event.role.value,
                )
            )
        case GlobalRoleGranted():
            await session.execute(
                insert(global_roles_view)
                .values(user_id=event.user_id, role=event.role.value, granted_at=event.granted_at)
                .on_conflict_do_nothing(
                    index_elements=[global_roles_view.c.user_id, global_roles_view.c.role]
                )
            )
        case GlobalRoleRevoked():
            await session.execute(
                global_roles_view.delete().where(
                    global_roles_view.c.user_id == event.user_id,
                    global_roles_view.c.role == event.role.value,
                )
            )
        case _:
            pass  # names, details and every other service's events do not change scope


async def _update_unit(session: AsyncSession, unit_id: str, **values: str | None) -> None:
    # An update of a unit not (yet) projected touches nothing: its registration comes first in
    # its own stream, so that only happens for units outside this service's interest.
    await session.execute(
        update(units_view).where(units_view.c.unit_id == unit_id).values(**values)
    )


# ---------------------------------------------------------------------------------------------
# Deciding


class Action(StrEnum):
    """Something a user may ask to do on a unit."""

    READ = "read"
    RECORD_EQUIPMENT = "record_equipment"
    MANAGE_EQUIPMENT = "manage_equipment"  # change status, move, transfer, withdraw
    CERTIFY = "certify"
    GRANT_ROLES = "grant_roles"


@dataclass(frozen=True, slots=True)
class _Rule:
    unit_roles: frozenset[UnitRole]
    global_roles: frozenset[GlobalRole]
    needs_recursive_grant: bool = False
    # Global roles that may act even on a unit that is no longer active.
    global_roles_on_closed_units: frozenset[GlobalRole] = frozenset()


_READERS = frozenset({GlobalRole.AUDITOR, GlobalRole.HELPDESK, GlobalRole.MINISTRY_ADMIN})
_ADMINS = frozenset({GlobalRole.MINISTRY_ADMIN})
RULES: dict[Action, _Rule] = {
    Action.READ: _Rule(frozenset(UnitRole), _READERS, global_roles_on_closed_units=_READERS),
    Action.RECORD_EQUIPMENT: _Rule(frozenset({UnitRole.ENTRY}), frozenset()),
    Action.MANAGE_EQUIPMENT: _Rule(frozenset({UnitRole.MANAGE}), frozenset()),
    Action.CERTIFY: _Rule(frozenset({UnitRole.CERTIFY}), frozenset()),
    Action.GRANT_ROLES: _Rule(
        frozenset({UnitRole.MANAGE}),
        _ADMINS,
        needs_recursive_grant=True,
        global_roles_on_closed_units=_ADMINS,
    ),
}


class Decision(StrEnum):
    """The outcome of an authorization question, with the reason for a refusal."""

    ALLOWED = "allowed"
    NOT_GRANTED = "not-granted"
    UNIT_READ_ONLY = "unit-read-only"


# Whether a grant reaches `:unit_id`. `up` is the unit's chain of effective parents with how far
# above it each sits (0 = the unit itself); `covering` adds every unit merged (transitively) into a
# unit of that chain, at the same distance, since its grants now belong there.
_HAS_COVERING_GRANT = text(
    """
WITH RECURSIVE up(unit_id, depth) AS (
    SELECT unit_id, 0 FROM authz_units_view WHERE unit_id = :unit_id
    UNION ALL
    SELECT coalesce(u.merged_into, u.parent_id), up.depth + 1
    FROM up JOIN authz_units_view u ON u.unit_id = up.unit_id
    WHERE coalesce(u.merged_into, u.parent_id) IS NOT NULL AND up.depth < :max_depth
),
covering(unit_id, depth, hops) AS (
    SELECT unit_id, depth, 0 FROM up
    UNION ALL
    SELECT m.unit_id, c.depth, c.hops + 1
    FROM covering c JOIN authz_units_view m ON m.merged_into = c.unit_id
    WHERE c.hops < :max_depth
)
SELECT EXISTS (
    SELECT 1 FROM covering c
    JOIN authz_grants_view g ON g.unit_id = c.unit_id
    WHERE g.user_id = :user_id
      AND g.role = ANY(:roles)
      AND (g.is_recursive OR (c.depth = 0 AND NOT :needs_recursive))
)
"""
).bindparams(bindparam("roles", type_=ARRAY(String)))

# Every active unit a user's grants of one role reach: the granted units, the units they were
# merged into, and, for recursive grants, everything below those. `reached` uses UNION, which
# drops rows already seen, so the downward walk ends even on a cycle.
_UNITS_REACHED = text(
    """
WITH RECURSIVE granted(unit_id, is_recursive, hops) AS (
    SELECT unit_id, is_recursive, 0 FROM authz_grants_view
    WHERE user_id = :user_id AND role = :role
    UNION ALL
    SELECT u.merged_into, g.is_recursive, g.hops + 1
    FROM granted g JOIN authz_units_view u ON u.unit_id = g.unit_id
    WHERE u.merged_into IS NOT NULL AND g.hops < :max_depth
),
reached(unit_id, is_recursive) AS (
    SELECT unit_id, is_recursive FROM granted
    UNION
    SELECT u.unit_id, true
    FROM reached r JOIN authz_units_view u ON coalesce(u.merged_into, u.parent_id) = r.unit_id
    WHERE r.is_recursive
)
SELECT DISTINCT r.unit_id FROM reached r
JOIN authz_units_view u ON u.unit_id = r.unit_id
WHERE u.status = 'active'
ORDER BY r.unit_id
"""
)


async def global_roles_of(session: AsyncSession, principal: Principal) -> frozenset[GlobalRole]:
    """Return the principal's global roles: those its token carries and those granted here."""
    rows = await session.scalars(
        select(global_roles_view.c.role).where(global_roles_view.c.user_id == principal.user_id)
    )
    return principal.global_roles | {GlobalRole(role) for role in rows}


async def decide(
    session: AsyncSession, principal: Principal, action: Action, unit_id: str
) -> Decision:
    """Answer whether `principal` may do `action` on `unit_id`, and if not, why."""
    rule = RULES[action]
    status_value = await session.scalar(
        select(units_view.c.status).where(units_view.c.unit_id == unit_id)
    )
    is_closed = status_value is not None and status_value != UnitStatus.ACTIVE.value
    global_roles = await global_roles_of(session, principal)
    holds_global = bool(global_roles & rule.global_roles)
    if is_closed:
        if global_roles & rule.global_roles_on_closed_units:
            return Decision.ALLOWED
        if action is not Action.READ:
            return Decision.UNIT_READ_ONLY
    elif holds_global:
        return Decision.ALLOWED
    if status_value is None:
        return Decision.NOT_GRANTED
    has_grant = await session.scalar(
        _HAS_COVERING_GRANT,
        {
            "unit_id": unit_id,
            "user_id": principal.user_id,
            "roles": sorted(role.value for role in rule.unit_roles),
            "needs_recursive": rule.needs_recursive_grant,
            "max_depth": MAX_DEPTH,
        },
    )
    return Decision.ALLOWED if has_grant else Decision.NOT_GRANTED


async def may(session: AsyncSession, principal: Principal, action: Action, unit_id: str) -> bool:
    """Return whether `principal` may do `action` on `unit_id`."""
    return await decide(session, principal, action, unit_id) is Decision.ALLOWED


async def require(
    session: AsyncSession, principal: Principal, action: Action, unit_id: str
) -> None:
    """Return if `principal` may do `action` on `unit_id`; raise a 403 `Problem` saying why not."""
    decision = await decide(session, principal, action, unit_id)
    if decision is Decision.UNIT_READ_ONLY:
        raise Problem(
            403,
            "unit-read-only",
            "The unit is read-only",
            f"unit {unit_id} is suspended, abolished or merged; only reading is allowed",
            unit_id=unit_id,
            action=action.value,
        )
    if decision is Decision.NOT_GRANTED:
        raise Problem(
            403,
            "forbidden",
            "Not allowed on this unit",
            f"{action.value} on unit {unit_id} needs a role you do not hold there",
            unit_id=unit_id,
            action=action.value,
        )


async def units_user_may_act_on(session: AsyncSession, user_id: str, role: UnitRole) -> list[str]:
    """Return the ids of the active units on which `user_id` holds `role`, sorted."""
    rows = await session.scalars(
        _UNITS_REACHED, {"user_id": user_id, "role": role.value, "max_depth": MAX_DEPTH}
    )
    return list(rows)
