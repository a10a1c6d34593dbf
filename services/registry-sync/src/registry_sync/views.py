"""registry-sync's tables: the registry view folded from events, and the delivery ledger.

Why this exists: the registry wants, per body, a small table (category, manufacturer, model,
acquisition year, in operation → quantity). It is computed on demand from `rs_items` (a school has
tens of rows, so a GROUP BY over its items costs less than maintaining counters), while the ledger
remembers what each body must be sent, what was sent and what the receiver acknowledged.

Tables of the projection `registry-sync.view` (`metadata`, rebuilt as a whole from offset 0):
- `rs_bodies`: every unit that reports (holding nodes do not): name, status, and `reports_to`, the
  body whose table counts its items (itself, or the unit it was merged into, transitively).
- `rs_items`: every item's registry-relevant state and its holder (the source while in transit).
- `rs_item_history`: the same state after each event that changed it, by equipment store
  position, so a certified table is folded as of the certification's `covers_position`.
- `rs_products`: the catalogue's products (to relabel items when a product is merged).
- `rs_certifications`, `rs_campaigns`: certifications and campaign closures.

Tables of the ledger (`ledger_metadata`, schema `public` pinned so a rebuild's shadow schema never
captures them; a rebuild leaves them alone):
- `rs_ledger`: one row per body. `wanted_seq` is bumped by the projector in the same transaction
  as the change; a delivery freezes the payload of a new version (`inflight_*`, with `built_seq` =
  the `wanted_seq` it reflects) before sending, so a retry resends that same version and key.
- `rs_delivery_log`: every attempt and its outcome (what an operator reads when a body is parked).
- `rs_reconciliations`: reconciliation runs (asked by the API or the schedule; run by the worker).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    and_,
    func,
    or_,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)
ledger_metadata = MetaData(naming_convention=NAMING_CONVENTION, schema="public")

bodies = Table(
    "rs_bodies",
    metadata,
    Column("unit_id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),  # active | suspended | abolished | merged
    Column("merged_into", String(32), nullable=True),
    Column("reports_to", String(32), nullable=False),
    Index("ix_rs_bodies_reports_to", "reports_to"),
)

items = Table(
    "rs_items",
    metadata,
    Column("item_id", Uuid, primary_key=True),
    Column("unit_id", String(32), nullable=False),
    Column("product_id", Uuid, nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("manufacturer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("acquisition_year", SmallInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("bundle_item_id", Uuid, nullable=True),
    Column("stream_version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Index("ix_rs_items_unit_id", "unit_id"),
    Index("ix_rs_items_product_id", "product_id"),
)

item_history = Table(
    "rs_item_history",
    metadata,
    Column("item_id", Uuid, primary_key=True),
    Column("stream_version", Integer, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("unit_id", String(32), nullable=False),
    Column("category_id", String(64), nullable=False),
    Column("manufacturer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("acquisition_year", SmallInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("in_bundle", Boolean, nullable=False),
    Index("ix_rs_item_history_unit_id_position", "unit_id", "position"),
)

products = Table(
    "rs_products",
    metadata,
    Column("product_id", Uuid, primary_key=True),
    Column("category_id", String(64), nullable=False),
    Column("manufacturer", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("merged_into", Uuid, nullable=True),
)

certifications = Table(
    "rs_certifications",
    metadata,
    Column("certification_id", Uuid, primary_key=True),
    Column("unit_id", String(32), nullable=False),
    Column("certified_at", DateTime(timezone=True), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("covers_position", BigInteger, nullable=False),
    Index("ix_rs_certifications_unit_id_certified_at", "unit_id", "certified_at"),
)

campaigns = Table(
    "rs_campaigns",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("opens_at", DateTime(timezone=True), nullable=True),
    Column("deadline_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

ledger = Table(
    "rs_ledger",
    ledger_metadata,
    Column("body_code", String(32), primary_key=True),
    Column("wanted_seq", BigInteger, nullable=False, server_default="1"),
    Column("built_seq", BigInteger, nullable=False, server_default="0"),
    # The first change not yet frozen into a version (None: nothing waits).
    Column("dirty_since", DateTime(timezone=True), nullable=True),
    # A campaign whose certified report this body still owes (set when the campaign closes).
    Column("certified_campaign", String(64), nullable=True),
    Column("last_version", Integer, nullable=False, server_default="0"),
    Column("inflight_version", Integer, nullable=True),
    Column("inflight_payload", JSONB, nullable=True),
    Column("inflight_hash", String(64), nullable=True),
    Column("inflight_since", DateTime(timezone=True), nullable=True),
    Column("acked_version", Integer, nullable=True),
    Column("acked_hash", String(64), nullable=True),
    Column("acked_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("failures_total", BigInteger, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("parked_at", DateTime(timezone=True), nullable=True),
    Column("parked_reason", Text, nullable=True),
    Column("mapping_version", String(32), nullable=True),
    Index("ix_rs_ledger_next_attempt_at", "next_attempt_at"),
)
# The delivery worker's question, "what is due, oldest first", answered from the few rows that
# wait, not by scanning the ledger of every body (`registry_sync.delivery.Deliverer.due`).
Index(
    "ix_rs_ledger_due",
    func.coalesce(ledger.c.next_attempt_at, ledger.c.dirty_since),
    ledger.c.body_code,
    postgresql_where=and_(
        ledger.c.parked_at.is_(None),
        or_(ledger.c.inflight_version.is_not(None), ledger.c.wanted_seq > ledger.c.built_seq),
    ),
)

delivery_log = Table(
    "rs_delivery_log",
    ledger_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("body_code", String(32), nullable=False),
    Column("registry_version", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(32), nullable=False),  # applied | stale_version | duplicate_key | …
    Column("detail", Text, nullable=True),
    Column("changed_since", DateTime(timezone=True), nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Index("ix_rs_delivery_log_body_code_id", "body_code", "id"),
)

reconciliations = Table(
    "rs_reconciliations",
    ledger_metadata,
    Column("id", Uuid, primary_key=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("requested_by", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),  # requested | running | done | failed
    Column("checked", Integer, nullable=False, server_default="0"),
    Column("mismatched", Integer, nullable=False, server_default="0"),
    Column("missing", Integer, nullable=False, server_default="0"),
    Column("unknown_at_receiver", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
)

certified_rounds = Table(
    "rs_certified_rounds",
    ledger_metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("marked_at", DateTime(timezone=True), nullable=False),
)
