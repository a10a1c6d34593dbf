"""The kernel's tables, present in every service's database.

Why this exists: the event store, its outbox, snapshots, idempotency keys and projection offsets are
the same in every service (ARCHITECTURE.md §4); each service's migrations create them through the
kernel's own Alembic branch (`shared/migrations`), so one definition serves all four databases.

Tables:
- `events`: the log. `position` is gap-free and in commit order (assigned under the single-row lock
of
  `event_positions`); `UNIQUE(stream_id, version)` is the optimistic-concurrency guard.
- `outbox`: positions not yet published to Kafka; written in the append's transaction, removed by
the
  relay once the broker acknowledged them (the event itself stays in `events` for ever).
- `snapshots`: the latest folded state of a stream, to bound load time of long streams.
- `idempotency_keys`: the first response to a request carrying an `Idempotency-Key`.
- `projection_offsets`: per projection and partition, the last Kafka offset applied and the highest
  source position seen, written in the same transaction as the read-model changes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import NAMING_CONVENTION

kernel_metadata = MetaData(naming_convention=NAMING_CONVENTION)

events = Table(
    "events",
    kernel_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    # No unique index on event_id: ids are uuid4 and covered by the hash; lookups go by
    # (stream_id, version), which every envelope carries. Each index costs every append.
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("unit_id", Text),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("prevhash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_id_version"),
    CheckConstraint("version > 0", name="version_positive"),
    Index("ix_events_unit_id_position", "unit_id", "position"),
)

event_positions = Table(
    "event_positions",
    kernel_metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("last_position", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

outbox = Table(
    "outbox",
    kernel_metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
)

snapshots = Table(
    "snapshots",
    kernel_metadata,
    Column("stream_id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    kernel_metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    # The body exactly as first sent (text, not jsonb, which would reorder keys): a retry gets
    # the same bytes.
    Column("response_body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
)

projection_offsets = Table(
    "projection_offsets",
    kernel_metadata,
    Column("projection", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("source_position", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("projection", "topic", "partition", name="pk_projection_offsets"),
)

SEED_POSITION_ROW = (
    "INSERT INTO event_positions (id, last_position) VALUES (1, 0) ON CONFLICT DO NOTHING"
)

# SQLSTATE raised by ictc_append when a stream is not at the version the caller expected.
VERSION_CONFLICT_SQLSTATE = "IC409"

# The append, as one server-side function so that a single-stream append is one round trip.
# It takes the position counter's row lock first, so it reads each stream's head after every earlier
# append has committed, assigns gap-free positions in commit order, chains each event's hash to its
# predecessor (sha256(prevhash || content digest || version), the digest computed by the caller over
# the canonical JSON, see shared.hashchain) and writes the events and their outbox rows in one
# statement. A stream with no event yet may come with its events' hashes ("hash" instead of
# "digest"): its chain starts at the genesis hash, so the writer can compute it (shared.eventstore
# does, for appends that expect version 0) and the hashing stays out of the lock; a "hash" for a
# stream that has events is ignored (its digest is chained as usual). A stream may come more than
# once (appends to it in one transaction): each later entry continues from the earlier one. A
# version conflict names the entry (its index, as the HINT) and the version found (DETAIL). Few
# SQL statements on purpose: each costs more than the arithmetic around it, so the loops only walk
# the input (plpgsql expressions) and the rows are inserted set-based at the end.
# Input: p_streams = [{"stream_id", "expected_version" (int or null), "metadata" (the stream's
# events share it), "events": [{event_id, type, schema_version, data, unit_id, digest | hash}]}],
# p_total = the number of events, p_recorded_at = their time. One row per event comes back.
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


# An append whose events hold a value only the database can give, taken inside the append's own
# statement: a per-unit counter, say, whose row lock is then held for that statement and its
# COMMIT only, not across a round trip to the client and back (registrations into one unit queue
# on it). The caller spells the events with `p_placeholder` where the value goes, inside JSON
# strings, and gives each event its canonical text ("text") instead of its digest; the function
# puts `p_value` in place of every occurrence, hashes each text into the digest `ictc_append`
# chains, and appends. `p_value` is an argument expression of the caller's statement (e.g. a
# service's counter function), evaluated before the append takes the positions row. It must need
# no JSON escaping (it is put verbatim into the JSON, and into JSON inside JSON). Rows as
# `ictc_append`'s, with `out_value` = `p_value`.
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


async def create_kernel_tables(connection: AsyncConnection) -> None:
    """Create the kernel tables on `connection` (tests and databases; services migrate)."""
    await connection.run_sync(kernel_metadata.create_all)
    await connection.execute(text(SEED_POSITION_ROW))
    await connection.execute(text(APPEND_FUNCTION))
    await connection.execute(text(APPEND_FILLED_FUNCTION))
