"""Units read models: the unit tree (with a folded name for search), locations, support service.

Folded from `units.events` by `units.projector` (projection `units.read-model`); `units.views`
declares the same tables for the code.

Revision ID: units_0001
Revises: units_ref_0001

It follows the reference lists rather than starting a second branch from the kernel: two branches
rooted side by side make a one-step downgrade of either (`units_0001-1`) drop the other too, so
the stairway could not walk them; one line of revisions per service keeps every step reversible.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "units_0001"
down_revision: str | None = "units_ref_0001"  # itself after the kernel head (ictc_fold, authz)
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the read-model tables and their indexes."""
    op.create_table(
        "units_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("effective_parent_id", sa.String(32), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_folded", sa.Text(), sa.Computed("ictc_fold(name)", persisted=True)),
        sa.Column("unit_type", sa.Text(), nullable=False),
        sa.Column("mm_id", sa.Text(), nullable=True),
        sa.Column("municipality", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("postal_code", sa.Text(), nullable=True),
        sa.Column("operation_shift", sa.Text(), nullable=True),
        sa.Column("legal_character", sa.Text(), nullable=True),
        sa.Column("orientation", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("is_holding_node", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name="pk_units_view"),
    )
    op.create_index("ix_units_view_effective_parent_id", "units_view", ["effective_parent_id"])
    op.create_index("ix_units_view_merged_into", "units_view", ["merged_into"])
    op.create_index("ix_units_view_mm_id", "units_view", ["mm_id"])
    op.create_index(
        "ix_units_view_unit_id_pattern",
        "units_view",
        ["unit_id"],
        postgresql_ops={"unit_id": "varchar_pattern_ops"},
    )
    op.create_table(
        "unit_locations_view",
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("origin_unit_id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("is_retired", sa.Boolean(), nullable=False),
        sa.Column("is_from_template", sa.Boolean(), nullable=False),
        sa.Column("added_on", sa.Date(), nullable=False),
        sa.Column("retired_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("location_id", name="pk_unit_locations_view"),
    )
    op.create_index("ix_unit_locations_view_unit_id", "unit_locations_view", ["unit_id"])
    op.create_table(
        "unit_serving_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("served_unit_id", sa.String(32), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "served_unit_id", name="pk_unit_serving_view"),
    )
    op.create_index(
        "ix_unit_serving_view_served_unit_id", "unit_serving_view", ["served_unit_id"]
    )


def downgrade() -> None:
    """Drop the read-model tables (their indexes go with them)."""
    op.drop_table("unit_serving_view")
    op.drop_table("unit_locations_view")
    op.drop_table("units_view")
