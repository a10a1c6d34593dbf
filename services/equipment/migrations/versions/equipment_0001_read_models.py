"""Equipment: read models (units and locations known here, products, the items of each inventory)
and the per-unit asset number counter of the write side.

Folded by `equipment.projector` (projections `equipment.read-model` and `equipment.units`);
`equipment.views` declares the same tables for the code. `equipment_asset_sequences` belongs to the
write side: the handlers increment a unit's row in the transaction that registers the item.

Revision ID: equipment_0001
Revises: (root of the equipment line; after the kernel head for ictc_fold and the event store)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "equipment_0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = "kernel_0004"


def upgrade() -> None:
    """Create the tables and their indexes."""
    op.create_table(
        "equipment_asset_sequences",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name="pk_equipment_asset_sequences"),
    )
    op.create_table(
        "equipment_units_view",
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name="pk_equipment_units_view"),
    )
    op.create_table(
        "equipment_locations_view",
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("is_retired", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("location_id", name="pk_equipment_locations_view"),
    )
    op.create_index(
        "ix_equipment_locations_view_unit_id", "equipment_locations_view", ["unit_id"]
    )
    op.create_table(
        "products_view",
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("part_number", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("proposed_by_unit_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column(
            "search_folded",
            sa.Text(),
            sa.Computed(
                "ictc_fold(manufacturer || ' ' || model || ' ' || coalesce(part_number, ''))",
                persisted=True,
            ),
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name="pk_products_view"),
    )
    op.create_index("ix_products_view_category_id", "products_view", ["category_id"])
    op.create_index("ix_products_view_status", "products_view", ["status"])
    op.create_table(
        "unit_items_view",
        sa.Column("item_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("inventory_unit_id", sa.String(32), nullable=True),
        sa.Column("product_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("category_id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("serial_number", sa.Text(), nullable=True),
        sa.Column("asset_number", sa.String(64, collation="C"), nullable=False),
        sa.Column("is_legacy_asset_number", sa.Boolean(), nullable=False),
        sa.Column("location_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("acquired_on", sa.Date(), nullable=True),
        sa.Column("funding_programme", sa.Text(), nullable=True),
        sa.Column("contract", sa.Text(), nullable=True),
        sa.Column("cost_eur", sa.Numeric(14, 2), nullable=True),
        sa.Column("invoice", sa.Text(), nullable=True),
        sa.Column("warranty_ends_on", sa.Date(), nullable=True),
        sa.Column("is_product_pending_approval", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("bundle_item_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("part_categories", postgresql.JSONB(), nullable=False),
        sa.Column("has_missing_parts", sa.Boolean(), nullable=False),
        sa.Column("transfer_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("transfer_to_unit_id", sa.String(32), nullable=True),
        sa.Column("dispatched_on", sa.Date(), nullable=True),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.Column("last_performed_on", sa.Date(), nullable=False),
        sa.Column("withdrawal_decision_reference", sa.Text(), nullable=True),
        sa.Column(
            "search_folded",
            sa.Text(),
            sa.Computed(
                "ictc_fold(coalesce(serial_number, '') || ' ' || asset_number)", persisted=True
            ),
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_unit_items_view"),
    )
    op.create_index(
        "ix_unit_items_view_inventory_listing",
        "unit_items_view",
        ["inventory_unit_id", "asset_number", "item_id"],
    )
    op.create_index(
        "ix_unit_items_view_transfer_from",
        "unit_items_view",
        ["unit_id"],
        postgresql_where=sa.text("transfer_id IS NOT NULL"),
    )
    op.create_index(
        "ix_unit_items_view_transfer_to",
        "unit_items_view",
        ["transfer_to_unit_id"],
        postgresql_where=sa.text("transfer_id IS NOT NULL"),
    )
    op.create_index(
        "ix_unit_items_view_bundle_item_id",
        "unit_items_view",
        ["bundle_item_id"],
        postgresql_where=sa.text("bundle_item_id IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop them."""
    for table in (
        "unit_items_view",
        "products_view",
        "equipment_locations_view",
        "equipment_units_view",
        "equipment_asset_sequences",
    ):
        op.drop_table(table)
