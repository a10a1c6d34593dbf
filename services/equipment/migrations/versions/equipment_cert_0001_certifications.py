"""Certifications (their export and PDF), as-of checkpoints and bulk-import records.

- `certifications`: one row per `InventoryCertified`, written in the certifying transaction: the
  header, the canonical JSON export (text, exact bytes) and the PDF (bytea).
- `unit_inventory_checkpoints`: a unit's inventory folded up to a position (`equipment.asof`), a
  cache of immutable facts that any query may rebuild.
- `equipment_imports` and `equipment_import_rows`: each bulk import and the result of each of its
  rows, so the history of an imported item can name the file and line it came from.

Revision ID: equipment_cert_0001
Revises: equipment_0001 (one line of revisions per service, so the stairway walks it)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "equipment_cert_0001"
down_revision: str | None = "equipment_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the certification, checkpoint and import tables."""
    op.create_table(
        "certifications",
        sa.Column("certification_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certified_on", sa.Date(), nullable=False),
        sa.Column("signer_id", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("covers_position", sa.BigInteger(), nullable=False),
        sa.Column("export_json", sa.Text(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("certification_id", name="pk_certifications"),
    )
    op.create_index(
        "ix_certifications_unit_id_certified_at", "certifications", ["unit_id", "certified_at"]
    )
    op.create_table(
        "unit_inventory_checkpoints",
        sa.Column("unit_id", sa.Text(), nullable=False),
        sa.Column("fold_version", sa.SmallInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("max_recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint(
            "unit_id", "fold_version", "position", name="pk_unit_inventory_checkpoints"
        ),
    )
    op.create_table(
        "equipment_imports",
        sa.Column("import_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("unit_id", sa.String(32), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("file_kind", sa.String(8), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", name="pk_equipment_imports"),
    )
    op.create_index(
        "ix_equipment_imports_unit_id_started_at", "equipment_imports", ["unit_id", "started_at"]
    )
    op.create_table(
        "equipment_import_rows",
        sa.Column("import_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("item_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("notes", postgresql.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", "line", name="pk_equipment_import_rows"),
    )
    op.create_index("ix_equipment_import_rows_item_id", "equipment_import_rows", ["item_id"])


def downgrade() -> None:
    """Drop the tables (their indexes go with them)."""
    op.drop_table("equipment_import_rows")
    op.drop_table("equipment_imports")
    op.drop_table("unit_inventory_checkpoints")
    op.drop_table("certifications")
