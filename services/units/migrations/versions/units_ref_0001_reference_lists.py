"""Units reference lists: regions, directorates (with registry codes), unit types, prefectures,
municipalities, loaded by `python -m units.seed` (units.reference).

A branch of its own (`units_reference`), so that it neither waits for nor blocks the revisions of
the unit read models; both depend on the kernel head.

Revision ID: units_ref_0001
Revises: (root of the units_reference branch)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "units_ref_0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = ("units_reference",)
depends_on: str | None = "kernel_0002"


def upgrade() -> None:
    """Create the reference tables."""
    op.create_table(
        "ref_regions",
        sa.Column("region_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("registry_code", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("region_id", name="pk_ref_regions"),
    )
    op.create_table(
        "ref_directorates",
        sa.Column("directorate_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("registry_code", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("ldap_ou", sa.Text(), nullable=True),
        sa.Column("third_level_dns", sa.Text(), nullable=True),
        sa.Column("implementation_entity", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("directorate_id", name="pk_ref_directorates"),
        sa.UniqueConstraint("registry_code", name="uq_ref_directorates_registry_code"),
    )
    op.create_table(
        "ref_unit_types",
        sa.Column("unit_type_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("initials", sa.Text(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("education_level_id", sa.Integer(), nullable=True),
        sa.Column("education_level", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("unit_type_id", name="pk_ref_unit_types"),
    )
    op.create_table(
        "ref_prefectures",
        sa.Column("prefecture_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("prefecture_id", name="pk_ref_prefectures"),
    )
    op.create_table(
        "ref_municipalities",
        sa.Column("municipality_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefecture_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("municipality_id", name="pk_ref_municipalities"),
    )


def downgrade() -> None:
    """Drop the reference tables."""
    for table in (
        "ref_municipalities",
        "ref_prefectures",
        "ref_unit_types",
        "ref_directorates",
        "ref_regions",
    ):
        op.drop_table(table)
