"""Change marks: a token per part of the compliance projection, renewed by each batch that changes
that part ("units": the unit directory).

The public reports keep what depends on the unit directory alone (the filter form's regions,
directorates and unit types) between requests, keyed by the "units" token, which the projector
renews in the same transaction as the change; `compliance.views` declares the same table, so a
rebuild creates it too (fresh tokens).

Revision ID: compliance_0003
Revises: compliance_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "compliance_0003"
down_revision: str | None = "compliance_0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        "compliance_change_marks_view",
        sa.Column("part", sa.String(32), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("part", name="pk_compliance_change_marks_view"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_table("compliance_change_marks_view")
