"""registry-sync: the registry view (projection `registry-sync.view`) and the delivery ledger.

`registry_sync.views` declares the same tables for the code. The ledger tables (`rs_ledger`,
`rs_delivery_log`, `rs_reconciliations`, `rs_certified_rounds`) are not part of the projection: a
rebuild leaves them alone.

Revision ID: registry_sync_0001
Revises: (root of the registry_sync line; after the kernel head)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "registry_sync_0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = ("registry_sync",)
depends_on: str | None = "kernel_0004"


def upgrade() -> None:
    """Create the tables and their indexes."""
    op.create_table(
        "rs_bodies",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("reports_to", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name="pk_rs_bodies"),
    )
    op.create_index("ix_rs_bodies_reports_to", "rs_bodies", ["reports_to"])
    op.create_table(
        "rs_items",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("acquisition_year", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bundle_item_id", sa.Uuid(), nullable=True),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_rs_items"),
    )
    op.create_index("ix_rs_items_unit_id", "rs_items", ["unit_id"])
    op.create_index("ix_rs_items_product_id", "rs_items", ["product_id"])
    op.create_table(
        "rs_item_history",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("acquisition_year", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("in_bundle", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "stream_version", name="pk_rs_item_history"),
    )
    op.create_index("ix_rs_item_history_unit_id_position", "rs_item_history", ["unit_id", "position"])
    op.create_table(
        "rs_products",
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("product_id", name="pk_rs_products"),
    )
    op.create_table(
        "rs_certifications",
        sa.Column("certification_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("covers_position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("certification_id", name="pk_rs_certifications"),
    )
    op.create_index("ix_rs_certifications_unit_id_certified_at", "rs_certifications", ["unit_id", "certified_at"])
    op.create_table(
        "rs_campaigns",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_rs_campaigns"),
    )
    op.create_table(
        "rs_ledger",
        sa.Column("body_code", sa.String(32), nullable=False),
        sa.Column("wanted_seq", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("built_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("dirty_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certified_campaign", sa.String(64), nullable=True),
        sa.Column("last_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("inflight_version", sa.Integer(), nullable=True),
        sa.Column("inflight_payload", postgresql.JSONB(), nullable=True),
        sa.Column("inflight_hash", sa.String(64), nullable=True),
        sa.Column("inflight_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_version", sa.Integer(), nullable=True),
        sa.Column("acked_hash", sa.String(64), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failures_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parked_reason", sa.Text(), nullable=True),
        sa.Column("mapping_version", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("body_code", name="pk_rs_ledger"),
    )
    op.create_index("ix_rs_ledger_next_attempt_at", "rs_ledger", ["next_attempt_at"])
    op.create_table(
        "rs_delivery_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("body_code", sa.String(32), nullable=False),
        sa.Column("registry_version", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("changed_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rs_delivery_log"),
    )
    op.create_index("ix_rs_delivery_log_body_code_id", "rs_delivery_log", ["body_code", "id"])
    op.create_table(
        "rs_reconciliations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("checked", sa.Integer(), server_default="0", nullable=False),
        sa.Column("mismatched", sa.Integer(), server_default="0", nullable=False),
        sa.Column("missing", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unknown_at_receiver", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rs_reconciliations"),
    )
    op.create_table(
        "rs_certified_rounds",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name="pk_rs_certified_rounds"),
    )


def downgrade() -> None:
    """Drop the tables."""
    for table in (
        "rs_certified_rounds", "rs_reconciliations", "rs_delivery_log", "rs_ledger",
        "rs_campaigns", "rs_certifications", "rs_products", "rs_item_history", "rs_items",
        "rs_bodies",
    ):
        op.drop_table(table)
