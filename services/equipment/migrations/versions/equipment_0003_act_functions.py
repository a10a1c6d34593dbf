"""The checks before a unit's command and the act's read as SQL functions (plans kept per session).

`POST /items` begins its transaction with one simple query: the checks (the unit's shared lock,
404, 403: `equipment.access`) and the read of the item, product and serial-claim streams with the
unit's last certification. Sent as text, PostgreSQL parsed and planned both on every request
(0.26 ms and 0.11 ms, a third of its CPU per registration); as PL/pgSQL functions their plans are
kept by each session, and the simple query only calls them. Their SQL is frozen here:
`equipment.access` and `equipment.handlers` keep the same text (a test compares them), and a
change of the checks needs a new revision.

Revision ID: equipment_0003
Revises: equipment_0002
"""

from __future__ import annotations

from alembic import op

revision: str = "equipment_0003"
down_revision: str | None = "equipment_0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

ACT_CHECK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION equipment_act_check(p_unit_id text, p_user_id text, p_roles text[],
                                               p_needs_recursive boolean, p_max_depth integer,
                                               p_lock_key bigint)
RETURNS TABLE(has_grant boolean, locked bigint, authz_status text, global_roles text[],
              unit_status text, locations text[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT q.has_grant, q.locked, q.authz_status::text, q.global_roles::text[],
                        q.unit_status::text, q.locations::text[]
    FROM (
        WITH RECURSIVE up(unit_id, depth) AS (
            SELECT unit_id, 0 FROM authz_units_view WHERE unit_id = p_unit_id
            UNION ALL
            SELECT coalesce(u.merged_into, u.parent_id), up.depth + 1
            FROM up JOIN authz_units_view u ON u.unit_id = up.unit_id
            WHERE coalesce(u.merged_into, u.parent_id) IS NOT NULL AND up.depth < p_max_depth
        ),
        covering(unit_id, depth, hops) AS (
            SELECT unit_id, depth, 0 FROM up
            UNION ALL
            SELECT m.unit_id, c.depth, c.hops + 1
            FROM covering c JOIN authz_units_view m ON m.merged_into = c.unit_id
            WHERE c.hops < p_max_depth
        )
        SELECT EXISTS (
            SELECT 1 FROM covering c
            JOIN authz_grants_view g ON g.unit_id = c.unit_id
            WHERE g.user_id = p_user_id
              AND g.role = ANY(p_roles)
              AND (g.is_recursive OR (c.depth = 0 AND NOT p_needs_recursive))
        ) AS has_grant,
        (SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared(p_lock_key)) AS l) AS locked,
        (SELECT status FROM authz_units_view WHERE unit_id = p_unit_id) AS authz_status,
        ARRAY(SELECT role FROM authz_global_roles_view WHERE user_id = p_user_id) AS global_roles,
        (SELECT status FROM equipment_units_view WHERE unit_id = p_unit_id) AS unit_status,
        ARRAY(SELECT location_id FROM equipment_locations_view
              WHERE unit_id = p_unit_id AND NOT is_retired) AS locations
    ) AS q;
END
$fn$
"""

ACT_READ_FUNCTION = r"""
CREATE OR REPLACE FUNCTION equipment_act_read(p_stream_ids text[], p_inventory_stream text)
RETURNS SETOF events
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    RETURN QUERY
        SELECT e.position, e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data,
               e.metadata, e.unit_id, e.recorded_at, e.prevhash, e.hash
          FROM unnest(p_stream_ids::text[]) AS s(stream_id) CROSS JOIN LATERAL (
               SELECT * FROM events WHERE events.stream_id = s.stream_id OFFSET 0) AS e
        UNION ALL (SELECT position, event_id, stream_id, version, type, schema_version, data,
                          metadata, unit_id, recorded_at, prevhash, hash
                     FROM events WHERE stream_id = p_inventory_stream
                      AND type = 'InventoryCertified' ORDER BY version DESC LIMIT 1)
        ORDER BY stream_id, version;
END
$fn$
"""


def upgrade() -> None:
    """Create `equipment_act_check` and `equipment_act_read`."""
    op.execute(ACT_CHECK_FUNCTION)
    op.execute(ACT_READ_FUNCTION)


def downgrade() -> None:
    """Drop them."""
    op.execute("DROP FUNCTION equipment_act_read(text[], text)")
    op.execute("DROP FUNCTION equipment_act_check(text, text, text[], boolean, integer, bigint)")
