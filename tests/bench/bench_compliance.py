"""Compliance bench: public report latency and projection lag over the real list of 15,053 units
while equipment events stream in at 200/s (issue 6).

What it measures (one run, one PostgreSQL server, one Kafka broker; fresh databases and topics
that are dropped at the end):

1. Load: the compliance projection's unit directory gets the real tree, the Ministry, the
   regional directorates, the directorates and every row of services/units/data/gr_school_units.csv
   (15,053 units, placed as `units.seed` places them: under their directorate, or under the holding
   node when the file gives none). It is built from generated `UnitRegistered` events folded by
   `compliance.projector.apply_batch`, the projector's own code (informative: units/s).
2. Processes: `compliance-worker` (relay, projectors, state publisher) and `compliance-api` run as
   the real processes on fresh topics. The bench waits until the publisher's first pass (a first
   state for every unit) has drained from the outbox.
3. Stream, `--seconds` long: equipment events appended to an equipment event store at `--rate`
   per second (one append per event, paced; mostly `ItemRegistered` to random schools, 1 in 50 an
   `InventoryCertified`), relayed by the kernel's `OutboxRelay` to the equipment topic, folded by
   the worker. The writer, its relay and the probe watcher run in a process of their own (as the
   equipment service does), so their work never delays the report client's reading of a
   response. Meanwhile:
   - report latency: one client sends not-completed report requests in turn, with filters
     (directorate, region, unit type within a directorate, code prefix, accent-free search, the
     HTML first page with and without a filter), timing each full response; p50/p95 per kind and
     over all filtered requests (target p95 <= 50 ms). The unfiltered JSON of every unit is timed
     too, informative (about 15,000 rows, not what a visitor asks for);
   - projection lag: 4 times a second the appended event is a probe, an item for a unit that only
     probes touch; the time from its append's commit until `/reports/not-completed.json?code=` shows
     the new item count (polled every 10 ms), p50/p95 (target p95 <= 1 s).
4. Memory: peak RSS (VmHWM) of the API and worker processes, and of the bench process; CPU time
   of the API and of its PostgreSQL sessions (per report request), of the bench's report client,
   and of the worker (per event) while streaming, which varies far less than wall time when other
   work shares the machine; how late the client's own event loop woke up; the slowest requests.

How to read it: latencies are wall time on this machine with everything (PostgreSQL, Kafka, the
two services and the bench's writer, relay and clients) sharing its CPUs. PASS/FAIL applies to the
two targets; the exit status is 0 even when a target fails (it is a report), non-zero only when the
bench could not run.

Run: `make bench` or `python -m tests.bench.bench_compliance [--seconds 30] [--rate 200]`.
Infrastructure: PostgreSQL admin URL from TEST_PG_ADMIN_URL (else PG_ADMIN_URL of
deploy/local.env), Kafka from TEST_KAFKA_BOOTSTRAP_SERVERS (else KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import multiprocessing
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from compliance import projector
from shared.clock import SystemClock, athens_date
from shared.db import create_engine, session_factory
from shared.devissuer import load_or_create
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.equipment import InventoryCertified, ItemRegistered
from shared.events.units import UnitRegistered
from shared.eventstore import EventStore, libpq_url
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay
from tests.bench.bench_kernel import (
    _maxrss_kib,
    database_url,
    delete_topics,
    kafka_bootstrap,
    out,
    pg_admin_url,
    server_version,
)
from units.reference import data_folder
from units.seed import (
    HOLDING_NODE_CODE,
    HOLDING_NODE_NAME,
    HOLDING_NODE_TYPE,
    MINISTRY_CODE,
    MINISTRY_NAME,
    MINISTRY_TYPE,
    REGION_TYPE,
    SCHOOL_LIST,
    TreeShape,
)

ROOT = Path(__file__).resolve().parents[2]
REPORT_P95_TARGET_MS = 50.0
LAG_P95_TARGET_MS = 1000.0
PARTITIONS = 6
PROBE_EVERY = 50  # 1 in 50 events at 200/s: 4 probes a second
CERTIFY_EVERY = 50
PROBE_UNITS = 100
LOAD_BATCH = 5000
LAG_POLL_S = 0.01
LAG_GIVE_UP_S = 15.0
UNITS_SOURCE = "/ictcadastre/units"
EQUIPMENT_SOURCE = "/ictcadastre/equipment"
REGISTERED_AT = datetime(2020, 9, 1, 9, 0, tzinfo=UTC)


def percentile(values: list[float], share: float) -> float:
    """Return the `share` percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(share * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


# --- the unit tree -----------------------------------------------------------------------------


@dataclass
class Tree:
    """The real tree as `UnitRegistered` events, and the codes the bench picks from."""

    events: list[UnitRegistered] = field(default_factory=list)
    schools: list[str] = field(default_factory=list)
    directorates: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    regions: dict[str, str] = field(default_factory=dict)  # directorate → region
    types: dict[str, str] = field(default_factory=dict)  # school → unit type


def real_tree() -> Tree:
    """Build the tree the units seed builds, from the reference lists and the real unit list."""
    folder = data_folder()
    shape = TreeShape.from_reference(folder)
    tree = Tree()
    since = date(2020, 9, 1)

    def add(code: str, parent: str | None, name: str, unit_type: str, **extra: Any) -> None:
        tree.events.append(
            UnitRegistered(
                unit_id=code,
                parent_id=parent,
                name=name,
                unit_type=unit_type,
                registered_on=since,
                **extra,
            )
        )

    add(MINISTRY_CODE, None, MINISTRY_NAME, MINISTRY_TYPE)
    add(
        HOLDING_NODE_CODE, MINISTRY_CODE, HOLDING_NODE_NAME, HOLDING_NODE_TYPE, is_holding_node=True
    )
    for code, name in shape.regions.items():
        add(code, MINISTRY_CODE, name, REGION_TYPE)
    for code, (name, unit_type, parent) in shape.directorates.items():
        add(code, parent, name, unit_type)
        tree.regions[code] = parent
    above = set(shape.regions) | set(shape.directorates)
    with (folder / SCHOOL_LIST).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code = row["registry_code"]
            if code in above:
                continue
            directorate = row["directorate_code"]
            parent = directorate if directorate in shape.directorates else HOLDING_NODE_CODE
            add(code, parent, row["name"], row["unit_type"], mm_id=row["mm_id"] or None)
            tree.schools.append(code)
            tree.types[code] = row["unit_type"]
            if parent != HOLDING_NODE_CODE:
                tree.directorates[parent].append(code)
    return tree


async def load_directory(url: str, tree: Tree) -> float:
    """Fold the tree through the projector; return units per second."""
    engine = create_engine(url, pool_size=2)
    sessions = session_factory(engine)
    started = time.perf_counter()
    try:
        for start in range(0, len(tree.events), LOAD_BATCH):
            batch = [
                RecordedEvent(
                    event_id=uuid.uuid4(),
                    source=UNITS_SOURCE,
                    stream_id=event.unit_id,
                    version=1,
                    position=start + n + 1,
                    type=event.type,
                    schema_version=event.schema_version,
                    data=event.payload(),
                    recorded_at=REGISTERED_AT,
                    unit_id=event.unit_id,
                )
                for n, event in enumerate(tree.events[start : start + LOAD_BATCH])
            ]
            async with sessions() as session, session.begin():
                await projector.apply_batch(batch, session)
    finally:
        await engine.dispose()
    return len(tree.events) / (time.perf_counter() - started)


# --- infrastructure ----------------------------------------------------------------------------


@contextlib.contextmanager
def databases(admin_url: str, names: list[str]) -> Iterator[None]:
    """Create the bench's databases and drop them afterwards, whatever happens."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


async def create_topics(bootstrap: str, names: list[str]) -> None:
    """Create the bench's topics (6 partitions) and wait until each partition has a leader."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names]
        )
        async with asyncio.timeout(30):
            while True:
                described = await admin.describe_topics(names)
                if all(
                    t["error_code"] == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far, in seconds (0 if unknown)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def peak_rss_mib(pid: int) -> float:
    """Return a process's peak RSS (VmHWM) in MiB (0 if unknown)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.asynccontextmanager
async def services(env: dict[str, str], logs: Path) -> AsyncIterator[dict[str, int]]:
    """Run compliance-worker and compliance-api; yield their pids; stop them afterwards."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    handles = []
    try:
        for name in ("compliance-worker", "compliance-api"):
            # PGAPPNAME names each process's PostgreSQL sessions (the API's server-side CPU).
            process_env = {**env, "PGAPPNAME": name}
            handle = (logs / f"{name}.log").open("wb")
            handles.append(handle)
            processes[name] = subprocess.Popen(  # noqa: ASYNC220  (our own console scripts)
                [str(ROOT / ".venv" / "bin" / name)],
                env=process_env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        yield {name: process.pid for name, process in processes.items()}
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early ({process.returncode}): see {logs}")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in handles:
            handle.close()


async def wait_until(check: Any, *, timeout_s: float, what: str) -> float:
    """Poll `check()` until true; return the seconds it took."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def backend_pids(url: str, application: str) -> set[int]:
    """Return the PostgreSQL server processes serving `application` (its PGAPPNAME)."""
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
        )
        return {int(row[0]) for row in await cursor.fetchall()}


class LoopLag:
    """How late the bench client's own event loop wakes up (its share of a report's latency)."""

    TICK_S = 0.005

    def __init__(self) -> None:
        self.lags_ms: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Sleep a tick at a time until `stop`, recording how late each wake-up came."""
        while not stop.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(self.TICK_S)
            self.lags_ms.append((time.perf_counter() - asked - self.TICK_S) * 1000)


async def outbox_backlog(url: str) -> int:
    """Return how many events wait in the compliance outbox."""
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        cursor = await conn.execute("SELECT count(*) FROM outbox")
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


# --- the stream --------------------------------------------------------------------------------


@dataclass
class Stream:
    """What the writer did and what the probes saw."""

    appended: int = 0
    lags_ms: list[float] = field(default_factory=list)
    lost: int = 0
    pending: list[tuple[str, int, float]] = field(default_factory=list)


def item(unit_id: str, n: int, today: date) -> ItemRegistered:
    """Return a new laptop for `unit_id`."""
    return ItemRegistered(
        item_id=uuid.uuid4(),
        unit_id=unit_id,
        product_id=uuid.UUID(int=1),
        category_id="laptop",
        manufacturer="Dell",
        model="Latitude 5440",
        asset_number=f"B{n:07d}",
        location_id=f"{unit_id}-L1",
        performed_on=today,
    )


def certification(unit_id: str, now: datetime) -> InventoryCertified:
    """Return a certification of `unit_id` at `now`."""
    return InventoryCertified(
        unit_id=unit_id,
        certification_id=uuid.uuid4(),
        certified_at=now,
        certified_on=athens_date(now),
        signer_id=f"head-{unit_id}",
        item_count=1,
        content_hash="0" * 64,
        covers_position=0,
    )


async def watch_probes(
    compliance_url: str, probes: list[str], stream: Stream, writing: asyncio.Event
) -> None:
    """Resolve outstanding probes by polling the report's read model with one query per round."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(compliance_url), autocommit=True
    ) as conn:
        while writing.is_set() or stream.pending:
            cursor = await conn.execute(
                "SELECT unit_id, item_count FROM compliance_unit_activity_view"
                " WHERE unit_id = ANY(%s)",
                (probes,),
                prepare=True,
            )
            seen: dict[str, int] = dict(await cursor.fetchall())
            now = time.perf_counter()
            still = []
            for unit_id, expected, appended_at in stream.pending:
                if seen.get(unit_id, 0) >= expected:
                    stream.lags_ms.append((now - appended_at) * 1000)
                elif now - appended_at > LAG_GIVE_UP_S:
                    stream.lost += 1
                else:
                    still.append((unit_id, expected, appended_at))
            stream.pending = still
            await asyncio.sleep(LAG_POLL_S)


async def write_stream(
    store: EventStore,
    others: list[str],
    probes: list[str],
    *,
    rate: float,
    seconds: float,
    stream: Stream,
) -> None:
    """Append `rate` events a second for `seconds`, paced; every PROBE_EVERY-th is a probe."""
    rng = random.Random(6)
    probe_counts: dict[str, int] = defaultdict(int)
    clock = SystemClock()
    today = clock.today()
    started = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event: Event
        if n % PROBE_EVERY == 0:
            unit_id = probes[(n // PROBE_EVERY) % len(probes)]
            event = item(unit_id, n, today)
            await store.append(str(event.item_id), [event], expected_version=0)
            probe_counts[unit_id] += 1
            stream.pending.append((unit_id, probe_counts[unit_id], time.perf_counter()))
        elif n % CERTIFY_EVERY == 1:
            unit_id = rng.choice(others)
            await store.append(
                f"inventory:{unit_id}",
                [certification(unit_id, clock.now())],
                expected_version=None,
            )
        else:
            event = item(rng.choice(others), n, today)
            await store.append(str(event.item_id), [event], expected_version=0)
        stream.appended += 1


@dataclass(frozen=True)
class WriterPlan:
    """What the writer process does: where it appends, relays and probes, and how fast."""

    equipment_url: str
    compliance_url: str
    bootstrap: str
    equipment_topic: str
    others: list[str]
    probes: list[str]
    rate: float
    seconds: float


async def _write_and_probe(plan: WriterPlan) -> tuple[Stream, float]:
    store = await EventStore.open(plan.equipment_url, source=EQUIPMENT_SOURCE, clock=SystemClock())
    relay = OutboxRelay(
        plan.equipment_url,
        topic=plan.equipment_topic,
        bootstrap_servers=plan.bootstrap,
        source=EQUIPMENT_SOURCE,
    )
    stop_relay, writing = asyncio.Event(), asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop_relay))
    # Warm up before the clock starts: one event through the relay, so the producer is connected.
    await store.append(
        "bench-warm-up", [item(plan.others[0], 0, SystemClock().today())], expected_version=None
    )
    async with asyncio.timeout(60):
        while await relay.backlog():  # noqa: ASYNC110  (a table to poll, no event to wait on)
            await asyncio.sleep(0.05)
    stream = Stream()
    writing.set()
    watching = asyncio.create_task(watch_probes(plan.compliance_url, plan.probes, stream, writing))
    started = time.perf_counter()
    try:
        await write_stream(
            store, plan.others, plan.probes, rate=plan.rate, seconds=plan.seconds, stream=stream
        )
        written_s = time.perf_counter() - started
        writing.clear()
        await watching
    finally:
        writing.clear()
        stop_relay.set()
        await relaying
        await store.close()
    stream.pending = []
    return stream, written_s


def writer_process(plan: WriterPlan, results: Connection) -> None:
    """Append the stream, relay it to Kafka and time the probes: a process of its own.

    Why a process: the equipment service that produces these events runs elsewhere; in the report
    client's event loop its appends, relay and probe polling would delay the reading of responses
    and count as report latency.
    """
    try:
        results.send(asyncio.run(_write_and_probe(plan)))
    except Exception as exc:  # reported by the parent, which owns the bench's exit status
        results.send(RuntimeError(f"writer process: {type(exc).__name__}: {exc}"))
    finally:
        results.close()


@dataclass
class Latencies:
    """Report response times per kind of request (ms), and each timed request in order."""

    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (seconds since the first request, kind, query string, ms)
    timeline: list[tuple[float, str, str, float]] = field(default_factory=list)


async def ask_reports(
    client: httpx.AsyncClient,
    tree: Tree,
    latencies: Latencies,
    stop: asyncio.Event,
    *,
    rounds: int | None = None,
) -> None:
    """Send report requests in turn until `stop` (or `rounds` of every kind), timing each."""
    rng = random.Random(5)
    directorates = [code for code, schools in tree.directorates.items() if schools]
    regions = sorted({tree.regions[code] for code in directorates})
    searches = ["γυμνασιο", "δημοτικο αθηνων", "λυκειο", "νηπιαγωγειο θεσσαλονικης", "επαλ"]
    kinds = [
        "json directorate",
        "json region",
        "json type+directorate",
        "json code prefix",
        "json search",
        "html first page",
        "html directorate",
    ]
    turn = 0
    first = time.perf_counter()
    while not stop.is_set() and (rounds is None or turn < rounds * len(kinds)):
        kind = kinds[turn % len(kinds)]
        turn += 1
        directorate = rng.choice(directorates)
        school = rng.choice(tree.directorates[directorate])
        match kind:
            case "json directorate":
                path, params = "/reports/not-completed.json", {"directorate": directorate}
            case "json region":
                path, params = "/reports/not-completed.json", {"region": rng.choice(regions)}
            case "json type+directorate":
                params = {"directorate": directorate, "unit_type": tree.types[school]}
                path = "/reports/not-completed.json"
            case "json code prefix":
                path, params = "/reports/not-completed.json", {"code": rng.choice(tree.schools)[:4]}
            case "json search":
                path, params = "/reports/not-completed.json", {"q": rng.choice(searches)}
            case "html first page":
                path, params = "/reports/not-completed.html", {}
            case _:
                path, params = "/reports/not-completed.html", {"directorate": directorate}
        started = time.perf_counter()
        response = await client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:300]}")
        latencies.by_kind[kind].append(elapsed)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        latencies.timeline.append((started - first, kind, query, elapsed))
        if turn % 20 == 0:  # now and then the whole list, unfiltered (informative)
            started = time.perf_counter()
            response = await client.get("/reports/not-completed.json")
            latencies.by_kind["json all units (informative)"].append(
                (time.perf_counter() - started) * 1000
            )


# --- main --------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    """Run the bench and print its report."""
    admin_url, bootstrap = pg_admin_url(), kafka_bootstrap()
    run_id = uuid.uuid4().hex[:8]
    header = (
        f"ICT Cadastre compliance bench, run {run_id}: PostgreSQL {server_version(admin_url)}, "
        f"Kafka {bootstrap}, Python {platform.python_version()}, {os.cpu_count()} CPU(s); "
        f"{args.rate:.0f} events/s for {args.seconds:.0f} s"
    )
    out(header)
    compliance_db, equipment_db = f"bench_compliance_{run_id}", f"bench_compliance_eq_{run_id}"
    topics = [f"bench.{name}.{run_id}" for name in ("units", "equipment", "compliance")]
    with databases(admin_url, [compliance_db, equipment_db]), tempfile.TemporaryDirectory() as tmp:
        compliance_url = database_url(admin_url, compliance_db, driver="psycopg")
        equipment_url = database_url(admin_url, equipment_db, driver="psycopg")
        try:
            await create_topics(bootstrap, topics)
            await asyncio.to_thread(upgrade, compliance_url, service_versions_dir("compliance"))
            await asyncio.to_thread(upgrade, equipment_url, None)

            out("part 1: the unit directory from the real list")
            tree = real_tree()
            units_per_s = await load_directory(compliance_url, tree)
            out(f"  .. {len(tree.events):,} units folded by the projector, {units_per_s:,.0f}/s")

            issuer = load_or_create(Path(tmp) / "issuer")
            port = free_port()
            base_env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
            env = {
                **base_env,
                "COMPLIANCE_DATABASE_URL": compliance_url,
                "COMPLIANCE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "COMPLIANCE_UNITS_TOPIC": topics[0],
                "COMPLIANCE_EQUIPMENT_TOPIC": topics[1],
                "COMPLIANCE_COMPLIANCE_TOPIC": topics[2],
                "COMPLIANCE_PORT": str(port),
                "COMPLIANCE_AUTH_ISSUER": issuer.issuer,
                "COMPLIANCE_AUTH_AUDIENCE": issuer.audience,
                "COMPLIANCE_AUTH_JWKS_FILE": str(Path(tmp) / "issuer" / "jwks.json"),
            }
            out("part 2: compliance-worker and compliance-api")
            async with (
                services(env, Path(tmp)) as pids,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
            ):

                async def serving() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        response = await client.get("/reports/not-completed.json?code=x")
                        return response.status_code == 200
                    return False

                await wait_until(serving, timeout_s=90, what="compliance-api")
                drained_s = await drain(compliance_url)
                out(f"  .. serving; the publisher's first pass drained in {drained_s:.1f} s")
                await bench_stream(
                    args,
                    tree=tree,
                    client=client,
                    compliance_url=compliance_url,
                    equipment_url=equipment_url,
                    bootstrap=bootstrap,
                    equipment_topic=topics[1],
                    pids=pids,
                    header=header,
                )
        finally:
            await delete_topics(bootstrap, topics)


async def drain(url: str) -> float:
    """Wait until the compliance outbox stays empty for 2 s (the publisher's first pass relayed)."""
    started = time.perf_counter()
    quiet_since: float | None = None
    while True:
        if await outbox_backlog(url) == 0:
            quiet_since = quiet_since or time.perf_counter()
            if time.perf_counter() - quiet_since >= 2:
                return time.perf_counter() - started - 2
        else:
            quiet_since = None
        if time.perf_counter() - started > 300:
            raise RuntimeError("the compliance outbox never drained")
        await asyncio.sleep(0.2)


async def bench_stream(
    args: argparse.Namespace,
    *,
    tree: Tree,
    client: httpx.AsyncClient,
    compliance_url: str,
    equipment_url: str,
    bootstrap: str,
    equipment_topic: str,
    pids: dict[str, int],
    header: str,
) -> None:
    """Time reports idle, then stream equipment events while timing reports and probes."""
    out("part 3: report latency, idle (the baseline)")
    idle = Latencies()
    await ask_reports(client, tree, idle, asyncio.Event(), rounds=args.idle_rounds)
    out(f"part 4: {args.rate:.0f} equipment events/s for {args.seconds:.0f} s, reports asked")
    directorate = max(tree.directorates, key=lambda code: len(tree.directorates[code]))
    probes = tree.directorates[directorate][:PROBE_UNITS]
    plan = WriterPlan(
        equipment_url=equipment_url,
        compliance_url=compliance_url,
        bootstrap=bootstrap,
        equipment_topic=equipment_topic,
        others=[code for code in tree.schools if code not in set(probes)],
        probes=probes,
        rate=args.rate,
        seconds=args.seconds,
    )
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    writer = context.Process(target=writer_process, args=(plan, sending), name="bench-writer")
    loaded, stop_asking = Latencies(), asyncio.Event()
    load_before = os.getloadavg()[0]
    api_backends = await backend_pids(compliance_url, "compliance-api")
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    backends_before = {pid: cpu_seconds(pid) for pid in api_backends}
    client_before = time.process_time()
    writer.start()
    sending.close()
    lag = LoopLag()
    lagging = asyncio.create_task(lag.run(stop_asking))
    asking = asyncio.create_task(ask_reports(client, tree, loaded, stop_asking))
    try:
        result = await asyncio.to_thread(receiving.recv)
    finally:
        stop_asking.set()
        await asking
        await lagging
        await asyncio.to_thread(writer.join, 60)
        receiving.close()
    if isinstance(result, Exception):
        raise RuntimeError(str(result))
    stream, written_s = result
    client_cpu = time.process_time() - client_before
    api_backends |= await backend_pids(compliance_url, "compliance-api")
    backend_cpu = sum(cpu_seconds(pid) - backends_before.get(pid, 0.0) for pid in api_backends)
    cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    print_report(
        args,
        header=header,
        idle=idle,
        loaded=loaded,
        stream=stream,
        written_s=written_s,
        pids=pids,
        load=(load_before, os.getloadavg()[0]),
        cpu_used=cpu_used | {"api backends": backend_cpu, "bench client": client_cpu},
        client_lag=lag.lags_ms,
    )


def print_report(
    args: argparse.Namespace,
    *,
    header: str,
    idle: Latencies,
    loaded: Latencies,
    stream: Stream,
    written_s: float,
    pids: dict[str, int],
    load: tuple[float, float],
    cpu_used: dict[str, float],
    client_lag: list[float],
) -> None:
    """Print the figures and the verdicts."""
    load_before, load_after = load

    width = 100
    out()
    out("=" * width)
    out(header)
    out("=" * width)
    out(
        f"{'not-completed report over 15,053 units':<38}"
        f" {'idle: n':>8} {'p50':>7} {'p95 ms':>7}   {'streaming: n':>12} {'p50':>7} {'p95 ms':>7}"
    )
    out("-" * width)
    filtered: dict[str, list[float]] = {"idle": [], "loaded": []}
    for kind in loaded.by_kind.keys() | idle.by_kind.keys():
        cells = []
        for name, latencies in (("idle", idle), ("loaded", loaded)):
            values = latencies.by_kind.get(kind, [])
            if "informative" not in kind:
                filtered[name] += values
            cells.append(_cells(values))
        out(f"{kind:<38} {cells[0]}   {cells[1]}")
    out(f"{'all filtered requests':<38} {_cells(filtered['idle'])}   {_cells(filtered['loaded'])}")
    out("-" * width)
    lags = stream.lags_ms
    out(
        f"events appended: {stream.appended:,} in {written_s:.1f} s"
        f" ({stream.appended / written_s:,.0f}/s, target {args.rate:.0f}/s)"
    )
    out(
        f"projection lag (append committed -> in the report's read model, polled every"
        f" {LAG_POLL_S * 1000:.0f} ms): {len(lags)} probes, p50 {_median(lags):.0f} ms,"
        f" p95 {percentile(lags, 0.95):.0f} ms, max {max(lags, default=0):.0f} ms,"
        f" not seen within {LAG_GIVE_UP_S:.0f} s: {stream.lost}"
    )
    if lags:
        tenth = max(1, len(lags) // 10)
        out(
            "  lag over the stream, first to last tenth (ms): "
            + " ".join(f"{_median(lags[i : i + tenth]):.0f}" for i in range(0, len(lags), tenth))
        )
    out(
        f"peak RSS: compliance-api {peak_rss_mib(pids['compliance-api']):.0f} MiB,"
        f" compliance-worker {peak_rss_mib(pids['compliance-worker']):.0f} MiB,"
        f" bench process {_maxrss_kib() / 1024:.0f} MiB;"
        f" 1-min load average {load_before:.1f} before the stream, {load_after:.1f} after"
        f" ({os.cpu_count()} CPUs)"
    )
    # CPU time, unlike wall time, hardly depends on what else the machine runs: compare runs by it.
    requests = sum(len(v) for v in loaded.by_kind.values())
    per_request = 1000 / max(requests, 1)
    out(
        f"CPU while streaming: compliance-api {cpu_used['compliance-api']:.1f} s"
        f" ({cpu_used['compliance-api'] * per_request:.1f} ms per report request),"
        f" its PostgreSQL sessions {cpu_used['api backends']:.1f} s"
        f" ({cpu_used['api backends'] * per_request:.1f} ms per request),"
        f" the bench's report client {cpu_used['bench client']:.1f} s"
        f" ({cpu_used['bench client'] * per_request:.1f} ms per request);"
        f" compliance-worker {cpu_used['compliance-worker']:.1f} s"
        f" ({cpu_used['compliance-worker'] * 1e6 / max(stream.appended, 1):.0f} us per event)"
    )
    out(
        f"report client's event loop, late wake-ups while streaming: p50 {_median(client_lag):.1f}"
        f" ms, p95 {percentile(client_lag, 0.95):.1f} ms, max {max(client_lag, default=0):.1f} ms"
    )
    slowest = sorted(loaded.timeline, key=lambda entry: -entry[3])[:8]
    out("slowest filtered requests while streaming (s into the stream, kind, query, ms):")
    for at, kind, query, elapsed in slowest:
        out(f"  {at:6.1f}  {kind:<22} {query[:40]:<40} {elapsed:7.1f}")
    out("-" * width)
    report_p95 = percentile(filtered["loaded"], 0.95)
    lag_p95 = percentile(lags, 0.95) if not stream.lost else float("inf")
    rate = stream.appended / written_s
    for label, value, target, unit in (
        ("report latency p95, filtered, while streaming", report_p95, REPORT_P95_TARGET_MS, "ms"),
        ("projection lag p95 at the stream's rate", lag_p95, LAG_P95_TARGET_MS, "ms"),
    ):
        verdict = "PASS" if value <= target else "FAIL  <<<"
        out(f"{label:<52} {value:>9.1f} {unit}   target <= {target:<5.0f} {verdict}")
    verdict = "PASS" if rate >= 0.95 * args.rate else "FAIL  <<<"
    out(
        f"{'the stream kept its rate':<52} {rate:>9.0f} /s   target >= {0.95 * args.rate:<5.0f}"
        f" {verdict}"
    )
    out("=" * width)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cells(values: list[float]) -> str:
    return f"{len(values):>8} {_median(values):>7.1f} {percentile(values, 0.95):>7.1f}"


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the stream")
    parser.add_argument("--rate", type=float, default=200.0, help="equipment events per second")
    parser.add_argument(
        "--idle-rounds", type=int, default=5, help="idle baseline: requests of each kind"
    )
    return parser.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except RuntimeError as exc:
        sys.stderr.write(f"bench could not run: {exc}\n")
        sys.exit(1)
