"""Compliance read models: unit directory, activity, items, certifications, campaigns, extensions,
each unit's first certification per campaign; and the published-state ledger of the publisher.

Folded by `compliance.projector` (projection `compliance.unit-status`); `compliance.views`
declares the same tables for the code. `compliance_published_states` is not part of the projection
(a rebuild leaves it alone): it records the last UnitComplianceChanged appended per unit and
campaign, so a state is published once.

Revision ID: compliance_0001
Revises: (root of the compliance line; after the kernel head for ictc_fold and the event store)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "compliance_0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = ("compliance",)
depends_on: str | None = "kernel_0004"


def upgrade() -> None:
    """Create the tables and their indexes."""
    op.create_table(
        "compliance_campaigns_view",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope_kind", sa.String(16), nullable=True),
        sa.Column("scope_value", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_compliance_campaigns_view"),
    )
    op.create_table(
        "compliance_certifications_view",
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certified_on", sa.Date(), nullable=False),
        sa.Column("signer_id", sa.String(256), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("certification_id", name="pk_compliance_certifications_view"),
    )
    op.create_index("ix_compliance_certifications_view_certified_at", "compliance_certifications_view", ["certified_at"])
    op.create_index("ix_compliance_certifications_view_unit_id_certified_at", "compliance_certifications_view", ["unit_id", "certified_at"])
    op.create_table(
        "compliance_extensions_view",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("scope_kind", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(200), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "scope_kind", "scope_id", name="pk_compliance_extensions_view"),
    )
    op.create_table(
        "compliance_items_view",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_compliance_items_view"),
    )
    op.create_table(
        "compliance_pending_transfers_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "transfer_id", name="pk_compliance_pending_transfers_view"),
    )
    op.create_table(
        "compliance_unit_activity_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("in_use_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_change_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_change_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_certified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_certified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_certification_id", sa.Uuid(), nullable=True),
        sa.Column("last_signer_id", sa.String(256), nullable=True),
        sa.Column("last_certified_item_count", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("unit_id", name="pk_compliance_unit_activity_view"),
    )
    op.create_table(
        "compliance_unit_campaigns_view",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signer_id", sa.String(256), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", name="pk_compliance_unit_campaigns_view"),
    )
    op.create_table(
        "compliance_units_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_folded", sa.Text(), sa.Computed("ictc_fold(name)", persisted=True), nullable=True),
        sa.Column("unit_type", sa.Text(), nullable=False),
        sa.Column("mm_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("is_holding_node", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.Column("left_scope_on", sa.Date(), nullable=True),
        sa.Column("is_administrative", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("region_id", sa.String(32), nullable=True),
        sa.Column("region_name", sa.Text(), nullable=True),
        sa.Column("directorate_id", sa.String(32), nullable=True),
        sa.Column("directorate_name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("unit_id", name="pk_compliance_units_view"),
    )
    op.create_index("ix_compliance_units_view_directorate_id", "compliance_units_view", ["directorate_id"])
    op.create_index("ix_compliance_units_view_merged_into", "compliance_units_view", ["merged_into"])
    op.create_index("ix_compliance_units_view_parent_id", "compliance_units_view", ["parent_id"])
    op.create_index("ix_compliance_units_view_region_id", "compliance_units_view", ["region_id"])
    op.create_table(
        "compliance_published_states",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", name="pk_compliance_published_states"),
    )


def downgrade() -> None:
    """Drop the tables (indexes go with them)."""
    op.drop_table("compliance_published_states")
    op.drop_table("compliance_units_view")
    op.drop_table("compliance_unit_campaigns_view")
    op.drop_table("compliance_unit_activity_view")
    op.drop_table("compliance_pending_transfers_view")
    op.drop_table("compliance_items_view")
    op.drop_table("compliance_extensions_view")
    op.drop_table("compliance_certifications_view")
    op.drop_table("compliance_campaigns_view")
