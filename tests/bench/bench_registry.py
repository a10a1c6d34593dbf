"""Registry-sync bench: end-to-end latency from an equipment event to its acknowledgement at the
registry receiver at 200 events/s, and the time to push the full periodic report of every unit of
the real list (15,053 bodies) (issue 7).

What it measures (one run, one PostgreSQL server, one Kafka broker, the reference receiver as its
own process, `registry-sync-worker` as its own process; fresh databases and topics, dropped at the
end):

1. Setup (informative): every unit of the real list (services/units/data/gr_school_units.csv)
   as `UnitRegistered`; a realistic inventory for `--inventory-bodies` bodies, 10-30 items each
   (`ItemRegistered`: laptops, workstations, printers, projectors, switches, UPS, stand-alone
   monitors and cpus; years 2008-2025 or unknown; some not in operation); an `InventoryCertified`
   inside the last closed regular window for 9 in 10 of them. All appended in multi-stream
   transactions to two source event stores, relayed by the kernel's `OutboxRelay` to fresh topics.
   The equipment topic is relayed and projected first, then the units, so each body's first push
   carries its whole inventory: that first push of every body is timed too (informative).
2. Latency, `--seconds` long at `--rate` equipment events/s (one append per event, paced): item
   registrations, status changes (in operation or not) and transfers between bodies (dispatch, then
   accept: a dispatch changes no table, so it counts toward the rate but has no latency of its
   own). Each event goes to bodies with no event of the stream still unacknowledged, so the first
   new version of its bodies acknowledged after the append is the one that carries it: the latency
   of an event is from its append's commit (bench clock) to the ledger's `acked_at` (the worker's
   clock, when the receiver's 200 arrived), over every body it touches (a transfer: both).
   Baselines measured in the same run: the projection lag of the same events (append committed ->
   the item's new state in `rs_items`, polled every 10 ms), and a raw PUT round trip to the
   receiver (a synthetic body, sequential, before the stream). Target: p95 <= 1 s.
3. Full periodic report: `registry_sync.worker.close_windows_once` (the worker's own window
   closure, here called by the bench: the worker's periodic check is turned off) marks the
   certified round of the last closed regular window; the clock runs until every body acknowledged
   a version frozen after it (certified where the body certified in the window, else live).
   Baseline in the same run: the receiver's raw capacity, the same number of PUTs (the very
   payloads it holds, each as a fresh version) sent straight to it with the delivery's concurrency
   from one aiohttp client, as the delivery worker's. The ratio delivery/raw shows the
   delivery's overhead.
4. Memory: peak RSS (VmHWM) of the worker and the receiver processes, ru_maxrss of the bench.

How to read it: wall time on this machine with PostgreSQL, Kafka, the worker, the receiver and the
bench's writer and relays sharing its CPUs; compare ratios, not absolutes, across machines.
PASS/FAIL applies to the latency target and to the stream keeping its rate; the exit status is 0
even when a target fails (it is a report), non-zero only when the bench could not run.

Run: `make bench` or `python -m tests.bench.bench_registry [--bodies 15053] [--inventory-bodies
1500] [--seconds 40] [--rate 200]`; a quick run: `--bodies 2000 --inventory-bodies 500
--seconds 10`. Infrastructure: PostgreSQL admin URL from TEST_PG_ADMIN_URL (else PG_ADMIN_URL of
deploy/local.env), Kafka from TEST_KAFKA_BOOTSTRAP_SERVERS (else KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg

from registry_sync.windows import last_closed_regular_window, regular_window_bounds
from registry_sync.worker import close_windows_once
from shared.clock import SystemClock, athens_date
from shared.db import create_engine
from shared.devissuer import load_or_create
from shared.events.base import Event
from shared.events.equipment import (
    Acquisition,
    InventoryCertified,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferDispatched,
)
from shared.events.units import UnitRegistered
from shared.eventstore import EventStore, libpq_url
from shared.migrate import upgrade
from shared.outbox import OutboxRelay
from tests.bench.bench_compliance import create_topics, databases, peak_rss_mib, percentile
from tests.bench.bench_kernel import (
    _maxrss_kib,
    database_url,
    delete_topics,
    kafka_bootstrap,
    out,
    pg_admin_url,
    server_version,
)
from tests.receiver import Receiver, start_receiver
from units.reference import data_folder
from units.seed import SCHOOL_LIST

ROOT = Path(__file__).resolve().parents[2]
LATENCY_P95_TARGET_MS = 1000.0
CONCURRENCY = 16  # registry-sync's default delivery_concurrency
UNITS_SOURCE = "/ictcadastre/units"
EQUIPMENT_SOURCE = "/ictcadastre/equipment"
STREAMS_PER_TX = 500
POLL_S = 0.01
GIVE_UP_S = 60.0
RAW_PUT_SAMPLES = 200
SETTLE_TIMEOUT_S = 1800.0
# (category, manufacturer, model, weight): what a Greek school holds, roughly.
PRODUCTS = [
    ("laptop", "Dell", "Latitude 5440", 6),
    ("laptop", "HP", "ProBook 450 G8", 5),
    ("laptop", "Lenovo", "ThinkPad E14", 4),
    ("workstation", "HP", "ProDesk 400 G6", 8),
    ("workstation", "Dell", "OptiPlex 3080", 6),
    ("workstation", "Fujitsu", "Esprimo P558", 3),
    ("tablet", "Samsung", "Galaxy Tab A8", 3),
    ("printer", "HEWLETT-PACKARD", "LaserJet Pro M404dn", 3),
    ("printer", "Brother", "HL-L2350DW", 2),
    ("scanner", "Canon", "CanoScan LiDE 300", 1),
    ("projector", "Epson", "EB-X41", 3),
    ("interactive_system", "Promethean", "ActivPanel 65", 1),
    ("switch_hub", "Cisco", "CBS110-24T", 2),
    ("access_point", "TP-Link", "EAP225", 2),
    ("modem_router", "ZTE", "H288A", 1),
    ("ups", "APC", "Back-UPS 700", 2),
    ("monitor", "Dell", "P2422H", 2),
    ("cpu", "Intel", "Core i5-10500", 1),
]
STATUS_WEIGHTS = [
    (ItemStatus.IN_USE, 80),
    (ItemStatus.IN_STORAGE, 8),
    (ItemStatus.OUT_OF_ORDER, 6),
    (ItemStatus.UNDER_REPAIR, 3),
    (ItemStatus.FOR_WITHDRAWAL, 3),
]
CHANGEABLE = [status for status, _ in STATUS_WEIGHTS]
OPS = [("register", 40), ("status", 35), ("transfer", 25)]


def wall() -> float:
    """Return the wall clock (seconds since the epoch): comparable with the worker's timestamps."""
    return time.time()


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _dist(values: Sequence[float]) -> str:
    return (
        f"n={len(values):,} p50 {_median(values):.0f} ms, p95 {percentile(list(values), 0.95):.0f}"
        f" ms, max {max(values, default=float('nan')):.0f} ms"
    )


# --- the world ---------------------------------------------------------------------------------


@dataclass
class ItemState:
    """What the bench knows of an item it appended."""

    unit_id: str
    status: ItemStatus
    version: int


@dataclass
class World:
    """The bodies, the items, and what the stream is waiting for."""

    bodies: list[str]
    names: dict[str, str]
    items: dict[uuid.UUID, ItemState] = field(default_factory=dict)
    held: dict[str, list[uuid.UUID]] = field(default_factory=dict)  # body -> items it holds
    acked: dict[str, int] = field(default_factory=dict)  # body -> last acknowledged version seen
    busy: set[str] = field(default_factory=set)


def real_list(limit: int) -> tuple[list[str], dict[str, str]]:
    """Return the first `limit` unit codes of the real list and their names."""
    with (data_folder() / SCHOOL_LIST).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    return [row["registry_code"] for row in rows], {r["registry_code"]: r["name"] for r in rows}


def new_item(rng: random.Random, unit_id: str, n: int) -> ItemRegistered:
    """Return a new item of a random product for `unit_id`."""
    category, manufacturer, model, _ = rng.choices(PRODUCTS, [p[3] for p in PRODUCTS])[0]
    year = rng.randint(2008, 2025) if rng.random() > 0.1 else None
    status = rng.choices(CHANGEABLE, [w for _, w in STATUS_WEIGHTS])[0]
    return ItemRegistered(
        item_id=uuid.uuid4(),
        unit_id=unit_id,
        product_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{manufacturer}/{model}"),
        category_id=category,
        manufacturer=manufacturer,
        model=model,
        asset_number=f"B{n:08d}",
        location_id=f"{unit_id}-L1",
        acquisition=Acquisition(acquired_on=date(year, 9, 1) if year else None),
        status=status,
        performed_on=date(2026, 1, 15),
    )


async def append_setup(
    units: EventStore, equipment: EventStore, world: World, inventory_bodies: int, seed: int
) -> tuple[int, int, int]:
    """Append the units, the inventory and the certifications; return their counts."""
    rng = random.Random(seed)
    codes = world.bodies
    for first in range(0, len(codes), STREAMS_PER_TX):
        async with units.transaction() as tx:
            for code in codes[first : first + STREAMS_PER_TX]:
                unit = UnitRegistered(
                    unit_id=code,
                    parent_id=None,
                    name=world.names[code],
                    unit_type="ΣΧΟΛΙΚΗ ΜΟΝΑΔΑ",
                    registered_on=date(2020, 9, 1),
                )
                tx.append(code, [unit], expected_version=0)
    stocked = rng.sample(codes, min(inventory_bodies, len(codes)))
    pending: list[ItemRegistered] = []
    for code in stocked:
        world.held[code] = []
        for _ in range(rng.randint(10, 30)):
            event = new_item(rng, code, len(pending))
            pending.append(event)
            world.items[event.item_id] = ItemState(code, event.status, 1)
            world.held[code].append(event.item_id)
    for first in range(0, len(pending), STREAMS_PER_TX):
        async with equipment.transaction() as tx:
            for event in pending[first : first + STREAMS_PER_TX]:
                tx.append(str(event.item_id), [event], expected_version=0)
    # Certifications inside the last closed regular window, covering everything appended so far.
    campaign_id, _ = last_closed_regular_window(datetime.now(UTC))
    bounds = regular_window_bounds(campaign_id)
    if bounds is None:  # pragma: no cover - a regular window id always has bounds
        raise RuntimeError(f"no bounds for {campaign_id}")
    certified_at = bounds[1] - timedelta(days=2)
    covers = await equipment.last_position()
    certifying = [code for code in stocked if rng.random() < 0.9]
    for first in range(0, len(certifying), STREAMS_PER_TX):
        async with equipment.transaction() as tx:
            for code in certifying[first : first + STREAMS_PER_TX]:
                certification = InventoryCertified(
                    unit_id=code,
                    certification_id=uuid.uuid4(),
                    certified_at=certified_at,
                    certified_on=athens_date(certified_at),
                    signer_id=f"head-{code}",
                    item_count=len(world.held[code]),
                    content_hash="0" * 64,
                    covers_position=covers,
                )
                tx.append(f"inventory:{code}", [certification], expected_version=None)
    return len(codes), len(pending), len(certifying)


# --- processes and polling ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str], log_path: Path) -> AsyncIterator[int]:
    """Run registry-sync-worker; yield its pid; stop it (SIGTERM, then SIGKILL) afterwards."""
    with log_path.open("wb") as handle:
        process = subprocess.Popen(  # noqa: ASYNC220  (our own console script)
            [str(ROOT / ".venv" / "bin" / "registry-sync-worker")],
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process.pid
            if process.poll() is not None:
                raise RuntimeError(f"registry-sync-worker exited early: see {log_path}")
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 10)


async def scalar(conn: psycopg.AsyncConnection[Any], query: str, *params: Any) -> Any:
    """Return the first column of the first row of `query`."""
    cursor = await conn.execute(query, params or None)
    row = await cursor.fetchone()
    return row[0] if row else None


async def poll(
    check: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.2
) -> float:
    """Await `check()` until it is true; return the seconds it took."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(every_s)
    return time.perf_counter() - started


SETTLED = (
    "SELECT count(*) FILTER (WHERE inflight_version IS NULL AND wanted_seq <= built_seq"
    " AND acked_version IS NOT NULL AND parked_at IS NULL), count(*),"
    " count(*) FILTER (WHERE parked_at IS NOT NULL) FROM rs_ledger"
)


async def settled(conn: psycopg.AsyncConnection[Any], bodies: int) -> bool:
    """Return whether every body is in the ledger, its last version acknowledged or parked."""
    cursor = await conn.execute(SETTLED)
    row = await cursor.fetchone()
    if row is None:
        return False
    done, total, parked = row
    return bool(total == bodies and done + parked == bodies)


async def parked_bodies(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    """Return the parked bodies and why (a receiver's refusal parks a body at once)."""
    cursor = await conn.execute(
        "SELECT body_code, parked_reason FROM rs_ledger WHERE parked_at IS NOT NULL"
    )
    return {code: str(reason) for code, reason in await cursor.fetchall()}


# --- part 2: the stream ------------------------------------------------------------------------


@dataclass
class Pending:
    """An event waiting for its bodies' acknowledgements."""

    item_id: uuid.UUID
    version: int
    before: dict[str, int]  # body -> acknowledged version before the event
    appended: float  # wall clock at the append's commit
    applied: float | None = None


@dataclass
class Stream:
    """What the writer did and what the watcher saw."""

    appended: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    skipped_busy: int = 0
    pending: list[Pending] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    lost: int = 0


def _idle(rng: random.Random, choices: list[str], world: World, stream: Stream) -> str | None:
    for _ in range(50):
        code = rng.choice(choices)
        if code not in world.busy:
            return code
        stream.skipped_busy += 1
    return None


Planned = tuple[
    str,
    ItemRegistered | ItemStatusChanged | ItemTransferDispatched | ItemTransferAccepted,
    list[str],
]


@dataclass
class Planner:
    """Picks the stream's next event: a random operation on bodies with nothing unacknowledged."""

    world: World
    stream: Stream
    rng: random.Random
    queued: list[tuple[ItemTransferAccepted, str, str]] = field(default_factory=list)
    today: date = date(2026, 11, 20)

    def next(self, n: int) -> Planned | None:
        """Return (kind, event, bodies touched), or None when no idle body was found."""
        world, rng = self.world, self.rng
        if self.queued:
            accept, source, target = self.queued.pop()
            return "accept", accept, [source, target]
        kind = rng.choices([o for o, _ in OPS], [w for _, w in OPS])[0]
        stocked = [code for code, held in world.held.items() if held]
        if kind == "register":
            code = _idle(rng, world.bodies, world, self.stream)
            return None if code is None else (kind, new_item(rng, code, 10_000_000 + n), [code])
        if kind == "status":
            code = _idle(rng, stocked, world, self.stream)
            if code is None:
                return None
            item_id = rng.choice(world.held[code])
            state = world.items[item_id]
            to = rng.choice([s for s in CHANGEABLE if s != state.status])
            changed = ItemStatusChanged(
                item_id=item_id,
                unit_id=code,
                from_status=state.status,
                to_status=to,
                reason="bench",
                performed_on=self.today,
            )
            return kind, changed, [code]
        source_code = _idle(rng, stocked, world, self.stream)
        target_code = _idle(rng, world.bodies, world, self.stream)
        if source_code is None or target_code is None or source_code == target_code:
            return None
        source, target = source_code, target_code
        item_id = rng.choice(world.held[source])
        transfer_id = uuid.uuid4()
        dispatched = ItemTransferDispatched(
            item_id=item_id,
            unit_id=source,
            transfer_id=transfer_id,
            to_unit_id=target,
            from_location_id=f"{source}-L1",
            performed_on=self.today,
        )
        accept = ItemTransferAccepted(
            item_id=item_id,
            unit_id=target,
            transfer_id=transfer_id,
            from_unit_id=source,
            to_location_id=f"{target}-L1",
            performed_on=self.today,
        )
        self.queued.append((accept, source, target))
        return kind, dispatched, [source, target]


def _after_append(world: World, event: Event, version: int) -> None:
    if isinstance(event, ItemRegistered):
        world.items[event.item_id] = ItemState(event.unit_id, event.status, version)
        world.held.setdefault(event.unit_id, []).append(event.item_id)
        return
    if not isinstance(event, ItemStatusChanged | ItemTransferDispatched | ItemTransferAccepted):
        return
    state = world.items[event.item_id]
    state.version = version
    if isinstance(event, ItemStatusChanged):
        state.status = event.to_status
    elif isinstance(event, ItemTransferAccepted):
        world.held[event.from_unit_id].remove(event.item_id)
        world.held.setdefault(event.unit_id, []).append(event.item_id)
        state.unit_id = event.unit_id


async def write_stream(
    store: EventStore, world: World, stream: Stream, *, rate: float, seconds: float, seed: int
) -> None:
    """Append `rate` events a second for `seconds`, paced; each measured event is a Pending."""
    planner = Planner(world, stream, random.Random(seed))
    started = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        planned = planner.next(n)
        if planned is None:
            continue
        kind, event, touched = planned
        world.busy.update(touched)
        state = world.items.get(event.item_id)
        result = await store.append(
            str(event.item_id), [event], expected_version=state.version if state else 0
        )
        appended = wall()
        stream.appended += 1
        stream.by_kind[kind] = stream.by_kind.get(kind, 0) + 1
        _after_append(world, event, result.version)
        if kind != "transfer":  # a dispatch changes no table: its accept is measured
            before = {code: world.acked[code] for code in touched}
            stream.pending.append(Pending(event.item_id, result.version, before, appended))


async def watch(registry_url: str, world: World, stream: Stream, writing: asyncio.Event) -> None:
    """Resolve pending events: applied in the view (lag), acknowledged by the receiver (e2e)."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(registry_url), autocommit=True
    ) as conn:
        while writing.is_set() or stream.pending:
            waiting = list(stream.pending)
            unapplied = [p.item_id for p in waiting if p.applied is None]
            bodies = sorted({code for p in waiting for code in p.before})
            cursor = await conn.execute(
                "SELECT item_id, stream_version FROM rs_items WHERE item_id = ANY(%s)",
                (unapplied,),
                prepare=True,
            )
            versions: dict[uuid.UUID, int] = dict(await cursor.fetchall())
            seen_at = wall()
            cursor = await conn.execute(
                "SELECT body_code, acked_version, extract(epoch FROM acked_at)::float8"
                " FROM rs_ledger WHERE body_code = ANY(%s)",
                (bodies,),
                prepare=True,
            )
            acks = {code: (version or 0, at) for code, version, at in await cursor.fetchall()}
            still = []
            for p in waiting:
                if p.applied is None and versions.get(p.item_id, 0) >= p.version:
                    p.applied = seen_at
                    stream.lag_ms.append((seen_at - p.appended) * 1000)
                done = all(acks.get(code, (0, None))[0] > v for code, v in p.before.items())
                if done:
                    acked_at = max(acks[code][1] for code in p.before)
                    stream.e2e_ms.append((acked_at - p.appended) * 1000)
                    for code in p.before:
                        world.acked[code] = acks[code][0]
                        world.busy.discard(code)
                elif seen_at - p.appended > GIVE_UP_S:
                    stream.lost += 1
                    for code in p.before:  # never acknowledged: leave the body out from now on
                        world.busy.add(code)
                else:
                    still.append(p)
            # The writer appends meanwhile: keep what it added since the snapshot.
            stream.pending = still + stream.pending[len(waiting) :]
            await asyncio.sleep(POLL_S)


async def raw_put_latency(receiver: Receiver, samples: int) -> list[float]:
    """Return the round trips (ms) of sequential PUTs of a synthetic body's fresh versions."""
    rows = [
        {
            "line": 1,
            "category_code": "LAPTOP",
            "category_label": "Φορητοί υπολογιστές",
            "manufacturer": "DELL",
            "model": "Latitude 5440",
            "acquisition_year": 2023,
            "quantity": 12,
            "in_operation": True,
        }
    ]
    hashed = json.dumps(
        [["LAPTOP", "DELL", "Latitude 5440", 2023, True, 12]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    content_hash = hashlib.sha256(hashed.encode()).hexdigest()
    times = []
    async with httpx.AsyncClient(base_url=receiver.url, timeout=10) as client:
        for version in range(1, samples + 1):
            key = f"bench0001:{version}"
            payload = {
                "body_code": "bench0001",
                "body_name": "bench",
                "body_status": "active",
                "merged_into": None,
                "registry_version": version,
                "idempotency_key": key,
                "as_of": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "basis": "live",
                "certification": None,
                "mapping_version": "2026.1",
                "rows": rows,
                "not_reported": [],
                "excluded_by_status": [],
                "content_hash": content_hash,
            }
            started = time.perf_counter()
            response = await client.put(
                "/v1/bodies/bench0001/table", json=payload, headers={"Idempotency-Key": key}
            )
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or response.json()["outcome"] != "applied":
                raise RuntimeError(f"raw PUT: {response.status_code} {response.text[:300]}")
    return times


# --- part 3: the full report and the receiver's raw capacity ----------------------------------


async def full_report(registry_url: str, bodies: int, parked: int) -> tuple[float, dict[str, int]]:
    """Mark the certified round; return (seconds to every body acknowledged, outcomes, detail)."""
    engine = create_engine(registry_url, pool_size=1)
    try:
        marked_at = wall()
        if not await close_windows_once(engine, SystemClock()):
            raise RuntimeError("the last closed regular window was already marked")
    finally:
        await engine.dispose()
    async with await psycopg.AsyncConnection.connect(
        libpq_url(registry_url), autocommit=True
    ) as conn:

        async def done() -> bool:
            return await settled(conn, bodies) and bool(
                await scalar(
                    conn,
                    "SELECT count(*) = %s FROM rs_ledger WHERE acked_at >= to_timestamp(%s)",
                    bodies - parked,
                    marked_at,
                )
            )

        await poll(done, timeout_s=SETTLE_TIMEOUT_S, what="the full report", every_s=0.1)
        last = await scalar(conn, "SELECT extract(epoch FROM max(acked_at))::float8 FROM rs_ledger")
        cursor = await conn.execute(
            "SELECT outcome, count(*) FROM rs_delivery_log WHERE at >= to_timestamp(%s)"
            " GROUP BY outcome",
            (marked_at,),
        )
        outcomes: dict[str, int] = dict(await cursor.fetchall())
    return float(last) - marked_at, outcomes


def held_payloads(db_path: Path) -> list[dict[str, Any]]:
    """Return the last push the receiver applied for every real body (read from its file)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT push FROM bodies WHERE body_code NOT LIKE 'bench%'").fetchall()
    return [json.loads(push) for (push,) in rows]


async def raw_capacity(url: str, payloads: list[dict[str, Any]], concurrency: int) -> float:
    """PUT every payload as a fresh version with `concurrency` in flight; return the seconds."""
    for payload in payloads:
        payload["registry_version"] += 1
        payload["idempotency_key"] = f"{payload['body_code']}:{payload['registry_version']}"
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []
    # The same HTTP client as the delivery worker's (aiohttp, keep-alive, same concurrency).
    async with aiohttp.ClientSession(
        base_url=url,
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=concurrency),
    ) as client:

        async def one(payload: dict[str, Any]) -> None:
            async with (
                gate,
                client.put(
                    f"/v1/bodies/{payload['body_code']}/table",
                    json=payload,
                    headers={"Idempotency-Key": payload["idempotency_key"]},
                ) as response,
            ):
                text = await response.text()
            if response.status != 200 or json.loads(text)["outcome"] != "applied":
                failures.append(f"{response.status} {text[:200]}")

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for payload in payloads:
                group.create_task(one(payload))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} raw PUTs failed, e.g. {failures[0]}")
    return elapsed


# --- main --------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    """Run the bench and print its report."""
    admin_url, bootstrap = pg_admin_url(), kafka_bootstrap()
    run_id = uuid.uuid4().hex[:8]
    codes, names = real_list(args.bodies)
    header = (
        f"ICT Cadastre registry-sync bench, run {run_id}: PostgreSQL {server_version(admin_url)},"
        f" Kafka {bootstrap}, Python {platform.python_version()}, {os.cpu_count()} CPU(s);"
        f" {len(codes):,} bodies, {args.rate:.0f} events/s for {args.seconds:.0f} s,"
        f" delivery concurrency {CONCURRENCY}"
    )
    out(header)
    registry_db, units_db, equipment_db = (
        f"bench_rs_{run_id}",
        f"bench_rs_units_{run_id}",
        f"bench_rs_eq_{run_id}",
    )
    topics = [f"bench.rs.{name}.{run_id}" for name in ("units", "equipment", "compliance")]
    bench_started = time.perf_counter()
    with (
        databases(admin_url, [registry_db, units_db, equipment_db]),
        tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp,
    ):
        registry_url = database_url(admin_url, registry_db, driver="psycopg")
        units_url = database_url(admin_url, units_db, driver="psycopg")
        equipment_url = database_url(admin_url, equipment_db, driver="psycopg")
        try:
            await create_topics(bootstrap, topics)
            for url in (units_url, equipment_url):
                await asyncio.to_thread(upgrade, url, None)
            with start_receiver(Path(tmp)) as receiver:
                await run(
                    args,
                    header=header,
                    world=World(codes, names),
                    receiver=receiver,
                    urls=(registry_url, units_url, equipment_url),
                    topics=topics,
                    bootstrap=bootstrap,
                    tmp=Path(tmp),
                )
        finally:
            await delete_topics(bootstrap, topics)
    out(f"total {time.perf_counter() - bench_started:.0f} s")


async def run(  # noqa: PLR0915
    args: argparse.Namespace,
    *,
    header: str,
    world: World,
    receiver: Receiver,
    urls: tuple[str, str, str],
    topics: list[str],
    bootstrap: str,
    tmp: Path,
) -> None:
    """Set up, stream, push the full report, print the report."""
    registry_url, units_url, equipment_url = urls
    lines: list[str] = []

    def note(line: str) -> None:
        out("  .. " + line)
        lines.append(line)

    clock = SystemClock()
    units = await EventStore.open(units_url, source=UNITS_SOURCE, clock=clock)
    equipment = await EventStore.open(equipment_url, source=EQUIPMENT_SOURCE, clock=clock)
    stop_relays = asyncio.Event()
    relay_tasks: list[asyncio.Task[None]] = []
    try:
        out("part 1: setup")
        started = time.perf_counter()
        n_units, n_items, n_certs = await append_setup(
            units, equipment, world, args.inventory_bodies, seed=7
        )
        note(
            f"appended {n_units:,} UnitRegistered, {n_items:,} ItemRegistered for"
            f" {len(world.held):,} bodies, {n_certs:,} InventoryCertified in"
            f" {time.perf_counter() - started:.1f} s"
        )
        issuer = load_or_create(tmp / "issuer")
        env = {
            **os.environ,
            "REGISTRY_SYNC_DATABASE_URL": registry_url,
            "REGISTRY_SYNC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REGISTRY_SYNC_UNITS_TOPIC": topics[0],
            "REGISTRY_SYNC_EQUIPMENT_TOPIC": topics[1],
            "REGISTRY_SYNC_COMPLIANCE_TOPIC": topics[2],
            "REGISTRY_SYNC_RECEIVER_URL": receiver.url,
            "REGISTRY_SYNC_DELIVERY_CONCURRENCY": str(CONCURRENCY),
            "REGISTRY_SYNC_RECONCILE_INTERVAL_S": "0",
            "REGISTRY_SYNC_WINDOW_CHECK_INTERVAL_S": "1000000000",  # the bench closes the window
            "REGISTRY_SYNC_AUTH_ISSUER": issuer.issuer,
            "REGISTRY_SYNC_AUTH_AUDIENCE": issuer.audience,
            "REGISTRY_SYNC_AUTH_JWKS_FILE": str(tmp / "issuer" / "jwks.json"),
            "OTEL_SDK_DISABLED": "true",
        }
        equipment_relay = OutboxRelay(
            equipment_url, topic=topics[1], bootstrap_servers=bootstrap, source=EQUIPMENT_SOURCE
        )
        relay_tasks.append(asyncio.create_task(equipment_relay.run(stop_relays)))
        async with (
            worker_process(env, tmp / "registry-sync-worker.log") as worker_pid,
            await psycopg.AsyncConnection.connect(libpq_url(registry_url), autocommit=True) as db,
        ):

            async def items_projected() -> bool:
                with contextlib.suppress(psycopg.errors.UndefinedTable):
                    count = await scalar(db, "SELECT count(*) FROM rs_items")
                    certs = await scalar(db, "SELECT count(*) FROM rs_certifications")
                    return bool(count == n_items and certs == n_certs)
                return False

            started = time.perf_counter()
            seconds = await poll(items_projected, timeout_s=SETTLE_TIMEOUT_S, what="the items")
            note(
                f"worker started, equipment relayed and projected: {n_items + n_certs:,} events"
                f" in {seconds:.1f} s ({(n_items + n_certs) / seconds:,.0f}/s)"
            )
            units_relay = OutboxRelay(
                units_url, topic=topics[0], bootstrap_servers=bootstrap, source=UNITS_SOURCE
            )
            relay_tasks.append(asyncio.create_task(units_relay.run(stop_relays)))
            started = wall()
            seconds = await poll(
                lambda: settled(db, n_units), timeout_s=SETTLE_TIMEOUT_S, what="the first pushes"
            )
            first_ms = await scalar(
                db, "SELECT extract(epoch FROM max(acked_at))::float8 FROM rs_ledger"
            )
            initial_s = float(first_ms) - started
            note(
                f"first push of every body (units relayed, projected, pushed, acknowledged):"
                f" {n_units:,} bodies in {initial_s:.1f} s ({n_units / initial_s:,.0f} bodies/s,"
                f" informative)"
            )
            parked = await parked_bodies(db)
            for code, reason in sorted(parked.items()):
                note(f"PARKED at the first push (left out from now on): {code}: {reason[:160]}")
            world.bodies = [code for code in world.bodies if code not in parked]
            for code in parked:
                world.held.pop(code, None)
            cursor = await db.execute("SELECT body_code, acked_version FROM rs_ledger")
            world.acked = dict(await cursor.fetchall())

            out("part 2: latency baseline, raw PUT round trip to the receiver (sequential)")
            raw_ms = await raw_put_latency(receiver, RAW_PUT_SAMPLES)
            note(f"raw PUT round trip: {_dist(raw_ms)}")

            out(f"part 2: {args.rate:.0f} equipment events/s for {args.seconds:.0f} s")
            stream = Stream()
            writing = asyncio.Event()
            writing.set()
            watcher = asyncio.create_task(watch(registry_url, world, stream, writing))
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            try:
                await write_stream(
                    equipment, world, stream, rate=args.rate, seconds=args.seconds, seed=11
                )
                written_s = time.perf_counter() - started
            finally:
                writing.clear()
            await watcher
            load_after = os.getloadavg()[0]
            rate = stream.appended / written_s
            kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stream.by_kind.items()))
            note(
                f"appended {stream.appended:,} events in {written_s:.1f} s ({rate:,.0f}/s):"
                f" {kinds};"
                f" busy bodies skipped {stream.skipped_busy}; load {load_before:.1f} ->"
                f" {load_after:.1f}"
            )
            note(f"end to end, append -> acknowledged: {_dist(stream.e2e_ms)}, lost {stream.lost}")
            note(f"projection lag, append -> in rs_items (10 ms polls): {_dist(stream.lag_ms)}")
            if stream.e2e_ms:
                tenth = max(1, len(stream.e2e_ms) // 10)
                note(
                    "e2e p50 over the stream, first to last tenth (ms): "
                    + " ".join(
                        f"{_median(stream.e2e_ms[i : i + tenth]):.0f}"
                        for i in range(0, len(stream.e2e_ms), tenth)
                    )
                )
            await poll(
                lambda: settled(db, n_units), timeout_s=SETTLE_TIMEOUT_S, what="a quiet ledger"
            )

            out("part 3: the full periodic report (certified round of the last closed window)")
            report_s, outcomes = await full_report(registry_url, n_units, len(parked))
            attempts = sum(outcomes.values())
            shown = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))
            note(
                f"full report: {n_units - len(parked):,} bodies acknowledged in {report_s:.1f} s"
                f" ({(n_units - len(parked)) / report_s:,.0f} bodies/s); {attempts:,} attempts:"
                f" {shown}"
            )
            payloads = await asyncio.to_thread(held_payloads, receiver.db_path)
            out(f"part 3: baseline, {len(payloads):,} raw PUTs straight to the receiver")
            raw_s = await raw_capacity(receiver.url, payloads, CONCURRENCY)
            note(
                f"raw PUTs: {len(payloads):,} in {raw_s:.1f} s ({len(payloads) / raw_s:,.0f}/s),"
                f" concurrency {CONCURRENCY}"
            )
            stats = await asyncio.to_thread(receiver.stats)
            duplicates = sum(1 for n in stats["applied_per_key"].values() if n > 1)
            worker_mib = peak_rss_mib(worker_pid)
        receiver_mib = peak_rss_mib(receiver.process.pid) if receiver.process else 0.0
    finally:
        stop_relays.set()
        await asyncio.gather(*relay_tasks, return_exceptions=True)
        await units.close()
        await equipment.close()

    width = 104
    out()
    out("=" * width)
    out(header)
    out("=" * width)
    for line in lines:
        out(line)
    out(
        f"receiver: {stats['pushes_received']:,} pushes received, {stats['pushes_applied']:,}"
        f" applied, keys applied more than once: {duplicates}"
    )
    out(
        f"peak RSS: registry-sync-worker {worker_mib:.0f} MiB, registry-receiver"
        f" {receiver_mib:.0f} MiB, bench process {_maxrss_kib() / 1024:.0f} MiB"
    )
    out("-" * width)
    # An event not acknowledged within GIVE_UP_S counts as GIVE_UP_S (a lower bound).
    e2e_p95 = percentile(stream.e2e_ms + [GIVE_UP_S * 1000] * stream.lost, 0.95)
    lag_p95 = percentile(stream.lag_ms, 0.95)
    out(
        f"{'ratio e2e p95 / projection lag p95':<56} {e2e_p95 / lag_p95:>8.1f}x"
        f"   (e2e p50 - lag p50 = {_median(stream.e2e_ms) - _median(stream.lag_ms):.0f} ms)"
    )
    out(f"{'ratio e2e p50 / raw PUT p50':<56} {_median(stream.e2e_ms) / _median(raw_ms):>8.1f}x")
    delivery_rate, raw_rate = (n_units - len(parked)) / report_s, len(payloads) / raw_s
    out(
        f"{'full report bodies/s / raw PUTs/s':<56} {delivery_rate / raw_rate:>8.1%}"
        f"   ({delivery_rate:,.0f} vs {raw_rate:,.0f} /s)"
    )
    out("-" * width)
    verdict = "PASS" if e2e_p95 <= LATENCY_P95_TARGET_MS else "FAIL  <<<"
    out(
        f"{'e2e latency p95 at the stream rate' + (' (lost: >=)' if stream.lost else ''):<56}"
        f" {e2e_p95:>8.0f} ms"
        f"   target <= {LATENCY_P95_TARGET_MS:.0f} ms   {verdict}"
    )
    verdict = "PASS" if rate >= 0.95 * args.rate else "FAIL  <<<"
    out(
        f"{'the stream kept its rate':<56} {rate:>8.0f} /s"
        f"   target >= {0.95 * args.rate:.0f} /s    {verdict}"
    )
    verdict = "PASS" if duplicates == 0 else "FAIL  <<<"
    out(f"{'no key applied twice at the receiver':<56} {duplicates:>8}      {verdict}")
    verdict = "PASS" if not parked else "FAIL  <<<"
    out(f"{'bodies the receiver refused (parked)':<56} {len(parked):>8}      {verdict}")
    out(
        f"full report of {n_units - len(parked):,} bodies: {report_s:.1f} s"
        " (no target: a figure to watch)"
    )
    out("=" * width)


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bodies", type=int, default=15_053, help="units of the real list used")
    parser.add_argument(
        "--inventory-bodies", type=int, default=1500, help="bodies given 10-30 items each"
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the stream")
    parser.add_argument("--rate", type=float, default=200.0, help="equipment events per second")
    return parser.parse_args()


if __name__ == "__main__":
    # SIGTERM (and SIGINT, which a background job ignores) unwind like Ctrl-C, so the finally
    # blocks stop the worker and the receiver and drop the databases and topics.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(main(parse_args()))
    except RuntimeError as exc:
        sys.stderr.write(f"bench could not run: {exc}\n")
        sys.exit(1)
