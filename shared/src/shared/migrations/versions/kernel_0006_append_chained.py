"""Append function: a new stream's hash chain may come with the request; a stream may come twice.

A writer that appends to a stream it expects to be new (expected version 0) knows the chain's start
(the genesis hash) and the versions (1, 2, ...), so it computes each event's hash itself and sends
it instead of the event's digest; `ictc_append` takes a given hash only when the stream has no
event yet, and hashes the digest otherwise (as before). The SHA-256 work leaves the positions row's
lock: `make bench` measured the ten-event append.

Two appends to one stream queued in one transaction reached `ictc_append` as two entries; the
second looked its stream's head up in the table, where the first entry's rows were not yet (they
go in at the end), and failed with a version conflict naming impossible versions. Each entry now
continues from the head an earlier entry of the same call left; a conflict names the entry by its
index (HINT) with the version found (DETAIL). Its SQL is frozen here, as in kernel_0003.

Revision ID: kernel_0006
Revises: kernel_0005
"""

from __future__ import annotations

from alembic import op

revision: str = "kernel_0006"
down_revision: str | None = "kernel_0005"
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
    v_new boolean;
    v_count integer := jsonb_array_length(p_streams);
    v_heads jsonb := '{}';
    v_k integer := 0;
    v_streams integer[];
    v_indexes integer[];
    v_versions integer[];
    v_prevs text[];
    v_hashes text[];
BEGIN
    UPDATE event_positions SET last_position = last_position + p_total WHERE id = 1
      RETURNING last_position - p_total INTO v_base;
    FOR i IN 0 .. v_count - 1 LOOP
        v_stream := p_streams -> i;
        out_stream_id := v_stream ->> 'stream_id';
        IF v_count > 1 AND v_heads ? out_stream_id THEN
            -- Appended to earlier in this call (its rows go in at the end): its head is here.
            out_version := (v_heads -> out_stream_id ->> 0)::integer;
            v_hash := v_heads -> out_stream_id ->> 1;
            v_new := false;
        ELSE
            SELECT ev.version, ev.hash INTO out_version, v_hash
              FROM events AS ev WHERE ev.stream_id = out_stream_id
             ORDER BY ev.version DESC LIMIT 1;
            v_new := NOT FOUND;
            IF v_new THEN
                out_version := 0;
                v_hash := repeat('0', 64);
            END IF;
        END IF;
        IF (v_stream ->> 'expected_version')::integer <> out_version THEN
            RAISE EXCEPTION USING ERRCODE = 'IC409',
                MESSAGE = format('stream %s is at version %s', out_stream_id, out_version),
                DETAIL = out_version::text, HINT = i::text;
        END IF;
        v_events := v_stream -> 'events';
        FOR j IN 0 .. jsonb_array_length(v_events) - 1 LOOP
            v_k := v_k + 1;
            out_version := out_version + 1;
            out_position := v_base + v_k;
            out_prevhash := v_hash;
            IF v_new AND v_events -> j ? 'hash' THEN
                v_hash := v_events -> j ->> 'hash';
            ELSE
                v_hash := encode(sha256(decode(v_hash, 'hex')
                                        || decode(v_events -> j ->> 'digest', 'hex')
                                        || int4send(out_version)), 'hex');
            END IF;
            out_hash := v_hash;
            v_streams[v_k] := i;
            v_indexes[v_k] := j;
            v_versions[v_k] := out_version;
            v_prevs[v_k] := out_prevhash;
            v_hashes[v_k] := v_hash;
            RETURN NEXT;
        END LOOP;
        IF v_count > 1 THEN
            v_heads := v_heads || jsonb_build_object(out_stream_id,
                                                     jsonb_build_array(out_version, v_hash));
        END IF;
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

# kernel_0003's, restored by the downgrade.
PREVIOUS_APPEND_FUNCTION = r"""
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


def upgrade() -> None:
    """Let `ictc_append` take a new stream's hashes from the request, and a stream twice."""
    op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    """Restore kernel_0003's `ictc_append`, which hashes every event itself."""
    op.execute(PREVIOUS_APPEND_FUNCTION)
