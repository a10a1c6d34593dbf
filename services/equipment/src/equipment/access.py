"""The checks before a unit's command in one round trip: unit known, authorization, unit lock.

Why this exists: `POST /items` is the hottest write of the service. Checked one by one (the unit
row, its open locations, `shared.authz.decide`'s three queries, the unit's advisory lock) the
checks cost more round trips than the command itself. `check_unit_command` asks PostgreSQL for all
of it in one statement, on the store transaction's own connection, and decides exactly as
`shared.authz.require` does (same rules, same problems). `check_unit_command_and_read` (POST
/items) calls the same checks and the act's read as SQL functions (migration equipment_0003), so
PostgreSQL does not plan them on every request.

Usage::

    async def command(tx):
        uow = handlers.UnitOfWork(tx, store.source)
        unit = await access.check_unit_command(uow, principal, Action.RECORD_EQUIPMENT, unit_id)
        return await handlers.register_item(cmd, ..., directory=access.Known(unit), uow=uow)

Notes: the lock is the unit's *shared* inventory lock (what every act on its items takes;
certification takes it exclusively), taken in the same statement as the checks, so the handler's
own `lock_units` finds it held. The reads that must see what committed before the lock was granted
(the unit's last certification) are later statements, with later snapshots. `COVERING_GRANT_SQL`
is `shared.authz`'s query spelled for psycopg; a unit test keeps the two the same.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import namedtuple_row

from equipment import handlers
from equipment.domain import KnownUnit
from shared.auth import Principal
from shared.authz import MAX_DEPTH, RULES, Action, Decision, UnitStatus
from shared.events.units import GlobalRole
from shared.problems import Problem

__all__ = ["CHECK_PARAMETERS", "COVERING_GRANT_SQL", "Known", "check_unit_command", "decide"]

# shared.authz._HAS_COVERING_GRANT with psycopg placeholders (kept equal by a unit test).
COVERING_GRANT_SQL = """
WITH RECURSIVE up(unit_id, depth) AS (
    SELECT unit_id, 0 FROM authz_units_view WHERE unit_id = %(unit_id)s
    UNION ALL
    SELECT coalesce(u.merged_into, u.parent_id), up.depth + 1
    FROM up JOIN authz_units_view u ON u.unit_id = up.unit_id
    WHERE coalesce(u.merged_into, u.parent_id) IS NOT NULL AND up.depth < %(max_depth)s
),
covering(unit_id, depth, hops) AS (
    SELECT unit_id, depth, 0 FROM up
    UNION ALL
    SELECT m.unit_id, c.depth, c.hops + 1
    FROM covering c JOIN authz_units_view m ON m.merged_into = c.unit_id
    WHERE c.hops < %(max_depth)s
)
SELECT EXISTS (
    SELECT 1 FROM covering c
    JOIN authz_grants_view g ON g.unit_id = c.unit_id
    WHERE g.user_id = %(user_id)s
      AND g.role = ANY(%(roles)s)
      AND (g.is_recursive OR (c.depth = 0 AND NOT %(needs_recursive)s))
)
"""

_CHECK = (
    COVERING_GRANT_SQL.rstrip() + " AS has_grant,"  # noqa: S608  (constant text, bound values)
    " (SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(%(lock_key)s)) AS l) AS locked,"
    " (SELECT status FROM authz_units_view WHERE unit_id = %(unit_id)s) AS authz_status,"
    " ARRAY(SELECT role FROM authz_global_roles_view WHERE user_id = %(user_id)s)"
    " AS global_roles,"
    " (SELECT status FROM equipment_units_view WHERE unit_id = %(unit_id)s) AS unit_status,"
    " ARRAY(SELECT location_id FROM equipment_locations_view"
    " WHERE unit_id = %(unit_id)s AND NOT is_retired) AS locations"
)


# The same checks and read as SQL functions (migration equipment_0003, which froze `_CHECK` and the
# act's read with %(name)s / %s as p_<name>): PostgreSQL keeps their plans per session instead of
# planning the recursive query and the read on every registration (a third of its CPU per
# POST /items). A test compares the functions' bodies with `_CHECK` and `ACT_READ_SQL`.
CHECK_PARAMETERS = ("unit_id", "user_id", "roles", "needs_recursive", "max_depth", "lock_key")
_CALL_CHECK = (
    "SELECT * FROM equipment_act_check(%(unit_id)s, %(user_id)s, %(roles)s::text[],"
    " %(needs_recursive)s, %(max_depth)s, %(lock_key)s)"
)
_CALL_READ = "SELECT * FROM equipment_act_read(%s::text[], %s)"


class Known:
    """A `handlers.UnitDirectory` that answers the one unit already read by the checks."""

    def __init__(self, unit: KnownUnit) -> None:
        self.unit = unit

    async def known_unit(self, unit_id: str) -> KnownUnit | None:
        """Return the unit read by the checks (None for any other)."""
        return self.unit if unit_id == self.unit.unit_id else None


def decide(
    principal: Principal,
    action: Action,
    *,
    status_value: str | None,
    view_roles: list[str],
    has_grant: bool,
) -> Decision:
    """Decide as `shared.authz.decide` does, from the values its queries read."""
    rule = RULES[action]
    is_closed = status_value is not None and status_value != UnitStatus.ACTIVE.value
    global_roles = principal.global_roles | {GlobalRole(role) for role in view_roles}
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
    return Decision.ALLOWED if has_grant else Decision.NOT_GRANTED


def _require(decision: Decision, action: Action, unit_id: str) -> None:
    # The problems of shared.authz.require, word for word.
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


async def check_unit_command(
    uow: handlers.UnitOfWork, principal: Principal, action: Action, unit_id: str
) -> KnownUnit:
    """Lock the unit (shared) and check it is known (404) and `principal` may act there (403).

    Returns the unit with its open locations.
    """
    key = handlers.unit_lock_key(unit_id)
    cursor = uow.tx.connection.cursor(row_factory=namedtuple_row)
    await cursor.execute(_CHECK, _check_values(principal, action, unit_id, key), prepare=True)
    row: Any = await cursor.fetchone()
    uow.held_locks[key] = False
    return _checked(row, principal, action, unit_id)


async def check_unit_command_and_read(
    uow: handlers.UnitOfWork,
    principal: Principal,
    action: Action,
    unit_id: str,
    *stream_ids: str,
) -> KnownUnit:
    """`check_unit_command`, then `uow.read_for_act(unit_id, *stream_ids)`: one round trip.

    One simple query: BEGIN if the transaction is not begun yet, the checks (which take the
    unit's lock), the read. Each statement takes its own snapshot, so the read sees every
    certification committed before the lock was granted. The read's rows are dropped on a 404/403.
    """
    key = handlers.unit_lock_key(unit_id)
    cursor = psycopg.AsyncClientCursor(uow.tx.connection, row_factory=namedtuple_row)
    _, read_values, wanted = uow.act_query(unit_id, *stream_ids)  # the values of ACT_READ_SQL
    begin = uow.tx.begin_prefix()
    check = cursor.mogrify(_CALL_CHECK, _check_values(principal, action, unit_id, key))
    await cursor.execute(f"{begin}{check}; {cursor.mogrify(_CALL_READ, read_values)}")
    if begin:
        cursor.nextset()  # past BEGIN's answer
    row: Any = await cursor.fetchone()
    uow.held_locks[key] = False
    cursor.nextset()
    rows = await cursor.fetchall()
    unit = _checked(row, principal, action, unit_id)
    await uow.absorb_act(unit_id, wanted, rows)
    return unit


def _check_values(principal: Principal, action: Action, unit_id: str, key: int) -> dict[str, Any]:
    rule = RULES[action]
    return {
        "unit_id": unit_id,
        "user_id": principal.user_id,
        "roles": sorted(role.value for role in rule.unit_roles),
        "needs_recursive": rule.needs_recursive_grant,
        "max_depth": MAX_DEPTH,
        "lock_key": key,
    }


def _checked(row: Any, principal: Principal, action: Action, unit_id: str) -> KnownUnit:
    if row.unit_status is None:
        raise Problem(404, "unit-not-found", "No such unit", f"unit {unit_id} is not registered")
    decision = decide(
        principal,
        action,
        status_value=row.authz_status,
        view_roles=list(row.global_roles),
        has_grant=bool(row.has_grant),
    )
    _require(decision, action, unit_id)
    return KnownUnit(unit_id, row.unit_status, frozenset(row.locations))
