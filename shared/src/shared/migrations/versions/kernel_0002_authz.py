"""Authorization projection: the unit tree and the grants as folded from `units.events`.

Every service keeps this projection in its own database (`shared.authz`), so it is part of the
kernel branch rather than of any service's.

Revision ID: kernel_0002
Revises: kernel_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "kernel_0002"
down_revision: str | None = "kernel_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the authorization projection's tables and indexes."""
    op.create_table(
        "authz_units_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("unit_id", name="pk_authz_units_view"),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'abolished', 'merged')",
            name="ck_authz_units_view_status_known",
        ),
    )
    op.create_index(
        "ix_authz_units_view_effective_parent",
        "authz_units_view",
        [sa.text("coalesce(merged_into, parent_id)")],
    )
    op.create_index(
        "ix_authz_units_view_merged_into",
        "authz_units_view",
        ["merged_into"],
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )
    op.create_table(
        "authz_grants_view",
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_recursive", sa.Boolean(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "unit_id", "role", name="pk_authz_grants_view"),
        sa.CheckConstraint(
            "role IN ('entry', 'manage', 'certify')", name="ck_authz_grants_view_role_known"
        ),
    )
    op.create_index("ix_authz_grants_view_unit_id", "authz_grants_view", ["unit_id"])
    op.create_table(
        "authz_global_roles_view",
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "role", name="pk_authz_global_roles_view"),
    )


def downgrade() -> None:
    """Drop the authorization projection's tables (their indexes go with them)."""
    op.drop_table("authz_global_roles_view")
    op.drop_table("authz_grants_view")
    op.drop_table("authz_units_view")
