"""Append with a value the database gives inside the append: `ictc_append_filled`.

A per-unit counter's next value (an item's asset number) must be in the event before it is hashed,
and was taken by a statement of its own: its row lock was then held across a round trip to the
API and back, and registrations into one unit queued on it. `ictc_append_filled` takes the value
as an argument of the append's own statement, puts it where the caller's placeholder stands, hashes
the events' canonical texts and calls `ictc_append`. Its SQL is frozen here, as in kernel_0003.

Revision ID: kernel_0005
Revises: kernel_0004
"""

from __future__ import annotations

from alembic import op

revision: str = "kernel_0005"
down_revision: str | None = "kernel_0004"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

APPEND_FILLED_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ictc_append_filled(p_streams text, p_total integer,
                                              p_recorded_at timestamptz, p_placeholder text,
                                              p_value text)
RETURNS TABLE(out_stream_id text, out_version integer, out_position bigint, out_prevhash text,
              out_hash text, out_value text)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_streams jsonb;
BEGIN
    IF p_value IS NULL OR p_value = '' OR p_value ~ '[[:cntrl:]]'
       OR strpos(p_value, '"') > 0 OR strpos(p_value, chr(92)) > 0 THEN
        RAISE EXCEPTION 'ictc_append_filled: the value % cannot stand verbatim in JSON', p_value;
    END IF;
    SELECT jsonb_agg(s.s || jsonb_build_object('events', (
               SELECT jsonb_agg(CASE WHEN e.e ? 'text'
                                     THEN (e.e - 'text') || jsonb_build_object('digest', encode(
                                              sha256(convert_to(e.e ->> 'text', 'UTF8')), 'hex'))
                                     ELSE e.e END ORDER BY e.o)
                 FROM jsonb_array_elements(s.s -> 'events') WITH ORDINALITY AS e(e, o)))
             ORDER BY s.o)
      INTO v_streams
      FROM jsonb_array_elements(replace(p_streams, p_placeholder, p_value)::jsonb)
           WITH ORDINALITY AS s(s, o);
    RETURN QUERY SELECT a.out_stream_id, a.out_version, a.out_position, a.out_prevhash,
                        a.out_hash, p_value
                   FROM ictc_append(v_streams, p_total, p_recorded_at) AS a;
END
$fn$
"""


def upgrade() -> None:
    """Create `ictc_append_filled`."""
    op.execute(APPEND_FILLED_FUNCTION)


def downgrade() -> None:
    """Drop it."""
    op.execute(
        "DROP FUNCTION ictc_append_filled(text, integer, timestamp with time zone, text, text)"
    )
