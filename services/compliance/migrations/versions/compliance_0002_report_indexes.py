"""Report indexes: the units in name order (a report's first page is an index scan) and unit codes
by prefix (the code filter).

The public lists pick a page's units from `compliance_units_view` in the order of
`compliance.reports` (folded name, name, code, each in "C" collation), among the units that are
ever asked to certify; the code filter is `unit_id LIKE 'prefix%'`, which a pattern-ops index
serves whatever the database's collation. `compliance.views` declares the same indexes.

Revision ID: compliance_0002
Revises: compliance_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "compliance_0002"
down_revision: str | None = "compliance_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the two indexes."""
    op.create_index(
        "ix_compliance_units_view_listed_name",
        "compliance_units_view",
        [sa.text('name_folded COLLATE "C"'), sa.text('name COLLATE "C"'), sa.text('unit_id COLLATE "C"')],
        postgresql_where=sa.text("NOT is_administrative AND NOT is_holding_node"),
    )
    op.create_index(
        "ix_compliance_units_view_unit_id_pattern",
        "compliance_units_view",
        ["unit_id"],
        postgresql_ops={"unit_id": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_compliance_units_view_unit_id_pattern", table_name="compliance_units_view")
    op.drop_index("ix_compliance_units_view_listed_name", table_name="compliance_units_view")
