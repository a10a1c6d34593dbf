"""Fewer indexes on `events`: every index is paid by every append.

`uq_events_event_id` guarded against uuid4 collisions (which do not happen) and served no query;
`ix_events_recorded_at` served no query either (time bounds are always within a stream or a unit,
whose own indexes lead). `make bench` measured the append path with and without them.

Revision ID: kernel_0004
Revises: kernel_0003
"""

from __future__ import annotations

from alembic import op

revision: str = "kernel_0004"
down_revision: str | None = "kernel_0003"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Drop the two indexes no query uses."""
    op.drop_constraint("uq_events_event_id", "events", type_="unique")
    op.drop_index("ix_events_recorded_at", table_name="events")


def downgrade() -> None:
    """Put them back."""
    op.create_index("ix_events_recorded_at", "events", ["recorded_at"])
    op.create_unique_constraint("uq_events_event_id", "events", ["event_id"])
