"""registry-sync: a partial index answering the delivery worker's "what is due, oldest first".

Without it every loop of the delivery worker scanned and sorted the ledger of every body (15,053
rows for the real list) to find the few that wait.

Revision ID: registry_sync_0002
Revises: registry_sync_0001
"""

from __future__ import annotations

from alembic import op

revision: str = "registry_sync_0002"
down_revision: str | None = "registry_sync_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the partial index."""
    op.execute(
        "CREATE INDEX ix_rs_ledger_due ON public.rs_ledger"
        " (coalesce(next_attempt_at, dirty_since), body_code)"
        " WHERE parked_at IS NULL AND (inflight_version IS NOT NULL OR wanted_seq > built_seq)"
    )


def downgrade() -> None:
    """Drop it."""
    op.execute("DROP INDEX public.ix_rs_ledger_due")
