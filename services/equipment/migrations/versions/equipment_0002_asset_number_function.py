"""The next asset number of a unit as an SQL function, for the append's own statement.

`equipment_next_asset_number(unit)` increments the unit's counter row (`equipment_asset_sequences`)
and returns `<unit>-<number, at least 6 digits>`, as `equipment.domain.asset_number` spells it.
`POST /items` passes it to `ictc_append_filled` (kernel_0005), so the counter's row is locked for
the append and its COMMIT only, not across a round trip to the API and back.

Revision ID: equipment_0002
Revises: equipment_cert_0001 (no `depends_on` kernel_0005: this function does not use it, and
every service migrates to all heads; a dependency would make the stairway step down from
equipment_0001 through kernel_0005)
"""

from __future__ import annotations

from alembic import op

revision: str = "equipment_0002"
down_revision: str | None = "equipment_cert_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

NEXT_ASSET_NUMBER_FUNCTION = r"""
CREATE OR REPLACE FUNCTION equipment_next_asset_number(p_unit_id text)
RETURNS text LANGUAGE sql VOLATILE AS $fn$
    INSERT INTO equipment_asset_sequences AS s (unit_id, last_number) VALUES (p_unit_id, 1)
    ON CONFLICT (unit_id) DO UPDATE SET last_number = s.last_number + 1
    RETURNING p_unit_id || '-' || CASE WHEN last_number < 1000000
                                       THEN lpad(last_number::text, 6, '0')
                                       ELSE last_number::text END
$fn$
"""


def upgrade() -> None:
    """Create `equipment_next_asset_number`."""
    op.execute(NEXT_ASSET_NUMBER_FUNCTION)


def downgrade() -> None:
    """Drop it."""
    op.execute("DROP FUNCTION equipment_next_asset_number(text)")
