"""Append function, faster: fewer SQL statements per call, the request spelled once.

`ictc_append` now takes the events' shared time and their count beside the streams, the metadata
once per stream, and walks its input with plpgsql expressions rather than one SQL statement per
loop; the rows go in with one statement (events and outbox together). Its SQL is frozen here, as
in kernel_0001: changing `shared.schema.APPEND_FUNCTION` again needs a new revision.

Revision ID: kernel_0003
Revises: kernel_0002
"""

from __future__ import annotations

from alembic import op

revision: str = "kernel_0003"
down_revision: str | None = "kernel_0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ictc_append(p_streams jsonb, p_total integer,
                                       p_recorded_at timestamptz)
RETURNS TABLE(out_stream_id text, out_version integer, out_position bigint, out_prevhash text,
              out_hash text)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_base bigint;
    v_stream jsonb;
    v_events jsonb;
    v_hash text;
    v_k integer := 0;
    v_streams integer[];
    v_indexes integer[];
    v_versions integer[];
    v_prevs text[];
    v_hashes text[];
BEGIN
    UPDATE event_positions SET last_position = last_position + p_total WHERE id = 1
      RETURNING last_position - p_total INTO v_base;
    FOR i IN 0 .. jsonb_array_length(p_streams) - 1 LOOP
        v_stream := p_streams -> i;
        out_stream_id := v_stream ->> 'stream_id';
        SELECT ev.version, ev.hash INTO out_version, v_hash
          FROM events AS ev WHERE ev.stream_id = out_stream_id ORDER BY ev.version DESC LIMIT 1;
        IF NOT FOUND THEN
            out_version := 0;
            v_hash := repeat('0', 64);
        END IF;
        IF (v_stream ->> 'expected_version')::integer <> out_version THEN
            RAISE EXCEPTION USING ERRCODE = 'IC409',
                MESSAGE = format('stream %s is at version %s', out_stream_id, out_version),
                DETAIL = out_version::text, HINT = out_stream_id;
        END IF;
        v_events := v_stream -> 'events';
        FOR j IN 0 .. jsonb_array_length(v_events) - 1 LOOP
            v_k := v_k + 1;
            out_version := out_version + 1;
            out_position := v_base + v_k;
            out_prevhash := v_hash;
            v_hash := encode(sha256(decode(v_hash, 'hex')
                                    || decode(v_events -> j ->> 'digest', 'hex')
                                    || int4send(out_version)), 'hex');
            out_hash := v_hash;
            v_streams[v_k] := i;
            v_indexes[v_k] := j;
            v_versions[v_k] := out_version;
            v_prevs[v_k] := out_prevhash;
            v_hashes[v_k] := v_hash;
            RETURN NEXT;
        END LOOP;
    END LOOP;
    IF v_k <> p_total THEN
        RAISE EXCEPTION 'ictc_append: % events given, p_total says %', v_k, p_total;
    END IF;
    WITH written AS (
        INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data,
                            metadata, unit_id, recorded_at, prevhash, hash)
        SELECT v_base + t.ord, (e.e ->> 'event_id')::uuid, s.s ->> 'stream_id', t.version,
               e.e ->> 'type', (e.e ->> 'schema_version')::smallint, e.e -> 'data',
               s.s -> 'metadata', e.e ->> 'unit_id', p_recorded_at, t.prev, t.hash
          FROM unnest(v_streams, v_indexes, v_versions, v_prevs, v_hashes)
               WITH ORDINALITY AS t(stream, index, version, prev, hash, ord)
               -- OFFSET 0 keeps each lookup a single evaluation (not one per column).
               CROSS JOIN LATERAL (SELECT p_streams -> t.stream OFFSET 0) AS s(s)
               CROSS JOIN LATERAL (SELECT s.s -> 'events' -> t.index OFFSET 0) AS e(e)
        RETURNING position
    )
    INSERT INTO outbox (position) SELECT position FROM written;
END
$fn$
"""

# The function of kernel_0001, restored by the downgrade.
PREVIOUS_APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ictc_append(p_streams jsonb)
RETURNS TABLE(out_stream_id text, out_version integer, out_position bigint, out_prevhash text,
              out_hash text)
LANGUAGE plpgsql AS $fn$
DECLARE
    s jsonb;
    v_total integer;
    v_base bigint;
    v_ord integer := 0;
    v_stream text;
    v_version integer;
    v_hash text;
    v_digest text;
    v_streams text[] := '{}';
    v_versions integer[] := '{}';
    v_prevs text[] := '{}';
    v_hashes text[] := '{}';
    v_events jsonb[] := '{}';
    e jsonb;
BEGIN
    SELECT coalesce(sum(jsonb_array_length(x -> 'events')), 0)::integer INTO v_total
      FROM jsonb_array_elements(p_streams) AS x;
    UPDATE event_positions SET last_position = last_position + v_total WHERE id = 1
      RETURNING last_position - v_total INTO v_base;
    FOR s IN SELECT value FROM jsonb_array_elements(p_streams) LOOP
        v_stream := s ->> 'stream_id';
        SELECT ev.version, ev.hash INTO v_version, v_hash
          FROM events AS ev WHERE ev.stream_id = v_stream ORDER BY ev.version DESC LIMIT 1;
        IF NOT FOUND THEN
            v_version := 0;
            v_hash := repeat('0', 64);
        END IF;
        IF jsonb_typeof(s -> 'expected_version') = 'number'
           AND (s ->> 'expected_version')::integer <> v_version THEN
            RAISE EXCEPTION USING ERRCODE = 'IC409',
                MESSAGE = format('stream %s is at version %s', v_stream, v_version),
                DETAIL = v_version::text, HINT = v_stream;
        END IF;
        FOR e IN SELECT value FROM jsonb_array_elements(s -> 'events') LOOP
            v_version := v_version + 1;
            v_digest := e ->> 'digest';
            v_streams := v_streams || v_stream;
            v_versions := v_versions || v_version;
            v_prevs := v_prevs || v_hash;
            v_hash := encode(sha256(decode(v_hash, 'hex') || decode(v_digest, 'hex')
                                    || int4send(v_version)), 'hex');
            v_hashes := v_hashes || v_hash;
            v_events := v_events || e;
        END LOOP;
    END LOOP;
    -- One set-based insert per table: cheaper than a statement per event.
    INSERT INTO events (position, event_id, stream_id, version, type, schema_version, data,
                        metadata, unit_id, recorded_at, prevhash, hash)
    SELECT v_base + t.ord, (t.e ->> 'event_id')::uuid, t.stream_id, t.version, t.e ->> 'type',
           (t.e ->> 'schema_version')::smallint, t.e -> 'data', t.e -> 'metadata',
           t.e ->> 'unit_id', (t.e ->> 'recorded_at')::timestamptz, t.prev, t.hash
      FROM unnest(v_events, v_streams, v_versions, v_prevs, v_hashes)
           WITH ORDINALITY AS t(e, stream_id, version, prev, hash, ord);
    INSERT INTO outbox (position) SELECT v_base + g FROM generate_series(1, v_total) AS g;
    RETURN QUERY
      SELECT t.stream_id, t.version, v_base + t.ord, t.prev, t.hash
        FROM unnest(v_streams, v_versions, v_prevs, v_hashes)
             WITH ORDINALITY AS t(stream_id, version, prev, hash, ord)
       ORDER BY t.ord;
END
$fn$
"""


def upgrade() -> None:
    """Replace `ictc_append(jsonb)` with `ictc_append(jsonb, integer, timestamptz)`."""
    op.execute("DROP FUNCTION IF EXISTS ictc_append(jsonb)")
    op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    """Restore the kernel_0001 `ictc_append(jsonb)`."""
    op.execute("DROP FUNCTION IF EXISTS ictc_append(jsonb, integer, timestamptz)")
    op.execute(PREVIOUS_APPEND_FUNCTION)
