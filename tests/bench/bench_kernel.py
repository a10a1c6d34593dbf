"""Kernel benchmark: event store appends, outbox relay and projector, each beside a baseline.

What it measures (one run, one PostgreSQL server, one Kafka broker, fresh databases and topics that
are dropped at the end):

1. Appends, sequential single writer, a new stream per transaction: appends/s with one event per
   transaction and events/s with ten, for our `EventStore` and for the `eventsourcing` library
   (PyPI, its PostgreSQL recorder, its own fresh database on the same server) doing the same thing
   the same way (build the events, then one save per transaction). Both are warmed up and sized
   to last about `--seconds` a run; then they run in turns, 5 rounds (who goes first alternates),
   and each figure is its side's best run. Ratio ours/theirs, target >= 2.0x; each round's own
   ratio is printed beside it (its two runs are back to back, under one state of the machine).
   A third side in the same rounds runs our store with its loop left asleep while an append
   waits (`BusyPoll(budget=0)`, see shared.busypoll; informative: what the polling is worth).
   One more row runs 8 concurrent writers on our store (informative: appends serialise on the
   position row, so this shows what concurrency buys on this machine).
2. Relay: `--events` events are appended in bulk (informative rate), then `OutboxRelay` drains the
   outbox to a fresh 6-partition topic; the clock starts when the relay becomes leader.
3. Projector: the counting projection of tests/integration/shared/kit.py run by `ProjectorRunner`
   (default batch size, into emptied tables, a fresh group each run) over that topic, beside a
   raw aiokafka consumer reading the same topic (fresh group, from the beginning,
   getmany(max_records=5000), same fetch settings, decoding nothing). Ratio projector/raw,
   target >= 25%. The raw consumer is also timed when it decodes each record into a
   `RecordedEvent` the way the projector does (informative: the decoding share of the
   projector's cost). The three take turns, 5 rounds, and each keeps its best run, so what
   slows the process down over time (a growing heap makes the garbage collector's passes
   longer) weighs on all of them alike. Every clock starts once the first non-empty batch is
   handled and counts only the records after it, so the consumer-group join and the first
   fetch are not counted on either side.
4. Memory beside each figure: the process's peak RSS over the phase (VmHWM, reset at the start of
   each phase through /proc/self/clear_refs; for the consumers and projector, the run with the
   highest), its growth over the RSS at the phase start, and
   `ru_maxrss` (the process peak so far, which never goes down). `--tracemalloc` adds the Python
   heap peak per phase, but tracing slows allocation-heavy code, so rates are then not comparable.

How to read it: rates are per second of wall time on this machine; compare ratios, not absolutes,
across machines. Each figure is the best of its runs because other load on the machine can only
slow a run down; the runs printed beside it show how noisy the machine was. PASS/FAIL applies
only to the two targets of issue 3; the exit status is 0 even when a target fails (it is a
report), and non-zero only when the bench itself could not run.

Run: `make bench` or `python -m tests.bench.bench_kernel [--seconds 2] [--events 50000]`.
Infrastructure: PostgreSQL admin URL from TEST_PG_ADMIN_URL (else PG_ADMIN_URL of
deploy/local.env), Kafka from TEST_KAFKA_BOOTSTRAP_SERVERS (else KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.busypoll import BusyPoll
from shared.clock import SystemClock
from shared.consumer import ProjectorRunner, decode_record
from shared.eventstore import EventStore
from shared.outbox import OutboxRelay
from tests.integration.shared.kit import Counted, prepare, projection, test_counts

ROOT = Path(__file__).resolve().parents[2]
APPEND_TARGET = 2.0
PROJECTOR_TARGET = 0.25
RUNS = 5
CONCURRENT_WRITERS = 8
PARTITIONS = 6
RAW_MAX_RECORDS = 5000
BULK_STREAMS_PER_TX = 50
EVENTS_PER_BULK_STREAM = 10
MIB = 1024 * 1024


def out(line: str = "") -> None:
    """Write one line of the report."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- configuration -----------------------------------------------------------------------------


def _local_env() -> dict[str, str]:
    values: dict[str, str] = {}
    path = ROOT / "deploy" / "local.env"
    if path.exists():
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def pg_admin_url() -> str:
    """Return the admin URL of the PostgreSQL server to bench on."""
    return os.environ.get("TEST_PG_ADMIN_URL") or _local_env()["PG_ADMIN_URL"]


def kafka_bootstrap() -> str:
    """Return the bootstrap servers of the Kafka broker to bench on."""
    return (
        os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or _local_env()["KAFKA_BOOTSTRAP_SERVERS"]
    )


def database_url(admin_url: str, database: str, *, driver: str | None = None) -> str:
    """Return `admin_url` pointing at `database`, optionally with a SQLAlchemy driver."""
    parts = urlsplit(admin_url)
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, ""))


# --- memory ------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


@dataclass
class Memory:
    """Per-phase memory: peak RSS (VmHWM, reset per phase), growth, ru_maxrss, tracemalloc peak."""

    trace: bool = False
    start_kib: int = 0
    run_peak_kib: int = 0

    def start(self) -> None:
        """Begin a phase: reset the RSS high-water mark (and the tracemalloc peak)."""
        # The reset also lowers ru_maxrss (Linux reads the same high-water mark): keep the run's.
        self.run_peak_kib = max(self.run_peak_kib, _maxrss_kib())
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.start_kib = _status_kib("VmRSS")
        if self.trace:
            tracemalloc.reset_peak()

    def peak_kib(self) -> int:
        """Return the phase's peak RSS so far (VmHWM since `start`)."""
        return _status_kib("VmHWM")

    def report(self) -> str:
        """Return the phase's memory figures as one cell."""
        peak = self.peak_kib()
        maxrss = self.run_peak_kib = max(self.run_peak_kib, _maxrss_kib())
        grown = max(0, peak - self.start_kib)
        text = f"{peak / 1024:6.0f} (+{grown / 1024:4.0f}) {maxrss / 1024:6.0f}"
        if self.trace:
            text += f" {tracemalloc.get_traced_memory()[1] / MIB:7.1f}"
        return text

    def header(self) -> str:
        """Return the column header matching `report`."""
        return "peak MiB (+grow) maxrss" + ("  heap MiB" if self.trace else "")


@dataclass
class Row:
    """One figure of the report."""

    label: str
    rate: float
    unit: str
    detail: str
    memory: str


@dataclass
class Report:
    """Figures and verdicts collected during the run."""

    memory: Memory
    rows: list[Row] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def add(
        self, label: str, rate: float, unit: str, detail: str, memory: str | None = None
    ) -> Row:
        """Record one figure with the current phase's memory (or `memory`), echo, return it."""
        row = Row(label, rate, unit, detail, memory or self.memory.report())
        self.rows.append(row)
        out(f"  .. {label}: {rate:,.0f} {unit} ({detail})")
        return row

    def verdict(
        self, label: str, ratio: float, target: float, *, percent: bool, detail: str = ""
    ) -> None:
        """Record a ratio against its target, PASS or FAIL."""
        shown = f"{ratio:.1%}" if percent else f"{ratio:.2f}x"
        wanted = f">= {target:.0%}" if percent else f">= {target:.1f}x"
        result = "PASS" if ratio >= target else "FAIL  <<<"
        self.verdicts.append(f"{label:<52} {shown:>8}   target {wanted:<8} {result:<9} {detail}")

    def print(self, header: str) -> None:
        """Print the whole table."""
        width = 112
        out()
        out("=" * width)
        out(header)
        out("=" * width)
        out(f"{'figure':<52} {'rate':>10} {'unit':<11} {self.memory.header():<27} detail")
        out("-" * width)
        for row in self.rows:
            out(f"{row.label:<52} {row.rate:>10,.0f} {row.unit:<11} {row.memory:<27} {row.detail}")
        out("-" * width)
        for line in self.verdicts:
            out(line)
        out("=" * width)


# --- appends -----------------------------------------------------------------------------------


class Dog(Aggregate):
    """The eventsourcing library's side of the append bench: one event per call."""

    @event("Registered")
    def __init__(self, n: int) -> None:
        self.n = n

    @event("Tricked")
    def trick(self, n: int) -> None:
        """Record one more event on the aggregate."""
        self.n = n


def theirs_appends(app: Application[uuid.UUID], count: int, per_tx: int) -> None:
    """Save `count` new aggregates of `per_tx` events each, one transaction per save."""
    for _ in range(count):
        dog = Dog(0)
        for j in range(per_tx - 1):
            dog.trick(j)
        app.save(dog)


_stream_ids = (f"bench-{uuid.uuid4().hex[:8]}-{i}" for i in range(10**9))


async def ours_appends(store: EventStore, count: int, per_tx: int) -> None:
    """Append `count` new streams of `per_tx` events each, one transaction per append."""
    for _ in range(count):
        events = [Counted(amount=j) for j in range(per_tx)]
        await store.append(next(_stream_ids), events, expected_version=0)


async def ours_concurrent(store: EventStore, count: int, per_tx: int) -> None:
    """Run `count` appends spread over CONCURRENT_WRITERS concurrent writers."""
    share = count // CONCURRENT_WRITERS
    await asyncio.gather(*(ours_appends(store, share, per_tx) for _ in range(CONCURRENT_WRITERS)))


async def measure(
    run: Callable[[int], Awaitable[None]], *, warmup: int, seconds: float
) -> tuple[float, list[float], int]:
    """Warm up, size N to last `seconds`, then return (best rate, rates, N) of RUNS runs."""
    count = await size_run(run, warmup=warmup, seconds=seconds)
    rates = [await timed_rate(run, count) for _ in range(RUNS)]
    return max(rates), rates, count


async def size_run(run: Callable[[int], Awaitable[None]], *, warmup: int, seconds: float) -> int:
    """Warm `run` up with `warmup` items; return how many last about `seconds`."""
    started = time.perf_counter()
    await run(warmup)
    rough = warmup / (time.perf_counter() - started)
    return max(warmup, int(rough * seconds))


async def timed_rate(run: Callable[[int], Awaitable[None]], count: int) -> float:
    """Run `count` items; return items/s."""
    started = time.perf_counter()
    await run(count)
    return count / (time.perf_counter() - started)


def _runs(rates: list[float], count: int, per: str) -> str:
    return f"best of [{', '.join(f'{r:,.0f}' for r in rates)}], N={count:,} {per}"


async def bench_appends(report: Report, admin_url: str, run_id: str, seconds: float) -> None:
    """Part 1: appends/s and events/s, ours against the eventsourcing library."""
    ours_db, theirs_db = f"bench_ours_{run_id}", f"bench_es_{run_id}"
    engine = await prepare(database_url(admin_url, ours_db, driver="psycopg"), with_views=False)
    await engine.dispose()
    parts = urlsplit(database_url(admin_url, theirs_db))
    app: Application[uuid.UUID] = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": theirs_db,
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "unused-with-trust-auth",
        }
    )
    store = await EventStore.open(
        database_url(admin_url, ours_db), source="/bench", clock=SystemClock()
    )
    # The same store with its loop left to sleep while an append waits (shared.busypoll):
    # informative, it shows what the polling is worth on this machine.
    asleep = await EventStore.open(
        database_url(admin_url, ours_db),
        source="/bench",
        clock=SystemClock(),
        busy_poll=BusyPoll(budget=0),
    )
    try:
        for per_tx, unit in ((1, "appends/s"), (10, "events/s")):
            labels = {
                "ours": f"append  ours           {per_tx:>2} event(s)/tx, 1 writer",
                "theirs": f"append  eventsourcing  {per_tx:>2} event(s)/tx, 1 writer",
                "asleep": f"append  ours, loop asleep {per_tx:>2} event(s)/tx (info)",
            }

            async def ours(n: int, per_tx: int = per_tx) -> None:
                await ours_appends(store, n, per_tx)

            async def theirs(n: int, per_tx: int = per_tx) -> None:
                theirs_appends(app, n, per_tx)

            async def ours_asleep(n: int, per_tx: int = per_tx) -> None:
                await ours_appends(asleep, n, per_tx)

            # Sized and warmed up each, then run in turns (ours, theirs, ours, ...), RUNS rounds,
            # so that a slower or faster spell of the machine falls on both sides alike.
            sides = (("ours", ours), ("theirs", theirs), ("asleep", ours_asleep))
            sizes = {side: await size_run(run, warmup=300, seconds=seconds) for side, run in sides}
            side_rates: dict[str, list[float]] = {side: [] for side, _ in sides}
            memory: dict[str, str] = {}
            for round_ in range(RUNS):
                # Who goes first alternates, so a machine that speeds up or slows down over a
                # round favours neither side.
                for side, run in sides if round_ % 2 == 0 else sides[::-1]:
                    report.memory.start()
                    side_rates[side].append(await timed_rate(run, sizes[side]) * per_tx)
                    memory[side] = report.memory.report()
            ours_rate, theirs_rate = max(side_rates["ours"]), max(side_rates["theirs"])
            for side, label in labels.items():
                report.add(
                    label,
                    max(side_rates[side]),
                    unit,
                    _runs(side_rates[side], sizes[side], "tx"),
                    memory[side],
                )
            # Each round's two runs are back to back: their ratio is that round's, under one
            # state of the machine. Printed beside the verdict (informative).
            paired = sorted(
                o / t for o, t in zip(side_rates["ours"], side_rates["theirs"], strict=True)
            )
            report.verdict(
                f"append ours/eventsourcing, {per_tx} event(s)/tx",
                ours_rate / theirs_rate,
                APPEND_TARGET,
                percent=False,
                detail=f"per round {' '.join(f'{r:.2f}' for r in paired)}",
            )
        wide = await EventStore.open(
            database_url(admin_url, ours_db),
            source="/bench",
            clock=SystemClock(),
            max_size=CONCURRENT_WRITERS,
        )
        try:

            async def concurrent(n: int) -> None:
                await ours_concurrent(wide, n, 1)

            report.memory.start()
            rate, rates, count = await measure(
                concurrent, warmup=CONCURRENT_WRITERS * 50, seconds=seconds
            )
            report.add(
                f"append  ours            1 event/tx,  {CONCURRENT_WRITERS} writers (info)",
                rate,
                "appends/s",
                _runs(rates, count, "tx"),
            )
        finally:
            await wide.close()
    finally:
        await store.close()
        await asleep.close()
        app.close()


# --- relay and projector -----------------------------------------------------------------------


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create `topic` and wait (bounded) until every partition has a leader."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        async with asyncio.timeout(30):
            while True:
                described = await admin.describe_topics([topic])
                if all(
                    t["error_code"] == 0
                    and len(t["partitions"]) == partitions
                    and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete `topics`, ignoring those that do not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def wait_until(check: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.005) -> None:
    """Poll `check` until it is true; raise TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        # The relay and runner expose counters, not events: polling them is the only way.
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(poll_s)


async def fill(store: EventStore, total: int) -> float:
    """Append `total` events in bulk transactions; return the events/s."""
    streams = total // EVENTS_PER_BULK_STREAM
    started = time.perf_counter()
    for first in range(0, streams, BULK_STREAMS_PER_TX):
        async with store.transaction() as tx:
            for _ in range(min(BULK_STREAMS_PER_TX, streams - first)):
                events = [Counted(amount=j) for j in range(EVENTS_PER_BULK_STREAM)]
                tx.append(next(_stream_ids), events, expected_version=0)
    return streams * EVENTS_PER_BULK_STREAM / (time.perf_counter() - started)


async def relay_rate(url: str, topic: str, bootstrap: str, total: int) -> float:
    """Drain the outbox with `OutboxRelay.run`; return events/s from leadership to empty outbox."""
    relay = OutboxRelay(url, topic=topic, bootstrap_servers=bootstrap, source="/bench")
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_until(lambda: relay.is_leader or task.done(), timeout_s=30)
        started = time.perf_counter()
        await wait_until(lambda: relay.published >= total or task.done(), timeout_s=600)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await task
    if relay.published < total or await relay.backlog():
        raise RuntimeError(f"relay published {relay.published} of {total}")
    return total / elapsed


def _consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    # The projector's fetch settings (shared.consumer.ProjectorRunner._consumer), a fresh group.
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def raw_rate(bootstrap: str, topic: str, group: str, total: int, *, decode: bool) -> float:
    """Read `total` records of `topic` from the beginning; return records/s after batch 1."""
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        seen = 0
        started, seen_at_start = 0.0, 0
        async with asyncio.timeout(120):
            while seen < total:
                batch = await consumer.getmany(timeout_ms=200, max_records=RAW_MAX_RECORDS)
                for records in batch.values():
                    seen += len(records)
                    if decode:
                        for record in records:
                            decode_record(record)
                if batch and not started:
                    started, seen_at_start = time.perf_counter(), seen
        return (total - seen_at_start) / (time.perf_counter() - started)
    finally:
        await consumer.stop()


class TimedRunner(ProjectorRunner):
    """A projector runner that notes when its first batch is done (the clock starts there)."""

    first_batch_at = 0.0
    applied_at_first = 0

    async def process(self, batch: dict[TopicPartition, list[Any]], consumer: Any) -> Any:
        """Process as usual; stamp the end of the first batch."""
        stats = await super().process(batch, consumer)
        if not self.first_batch_at:
            self.first_batch_at, self.applied_at_first = time.perf_counter(), self.applied
        return stats


async def projector_rate(
    engine: AsyncEngine, bootstrap: str, topic: str, name: str, total: int
) -> tuple[float, int]:
    """Run the counting projection over `topic` into emptied tables; return (events/s, batch)."""
    async with engine.begin() as connection:
        await connection.execute(test_counts.delete())
    runner = TimedRunner(projection(name, [topic]), engine=engine, bootstrap_servers=bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_until(lambda: runner.applied >= total or task.done(), timeout_s=600, poll_s=0.01)
        elapsed = time.perf_counter() - runner.first_batch_at
        counted = total - runner.applied_at_first
    finally:
        stop.set()
        await task
    async with engine.connect() as connection:
        applied = (await connection.execute(select(func.sum(test_counts.c.events)))).scalar()
    if applied != total or runner.dead_lettered:
        raise RuntimeError(f"projector applied {applied} of {total} ({runner.dead_lettered} DLQ)")
    return counted / elapsed, runner.batch_size


async def bench_pipeline(
    report: Report, *, admin_url: str, bootstrap: str, run_id: str, total: int, topics: list[str]
) -> None:
    """Parts 2 and 3: relay publish rate; projector apply rate against a raw consumer."""
    pipe_db = f"bench_pipe_{run_id}"
    topic = f"bench.events.{run_id}"
    name = f"bench.counts.{run_id}"
    topics.append(topic)
    engine = await prepare(database_url(admin_url, pipe_db, driver="psycopg"))
    store = await EventStore.open(
        database_url(admin_url, pipe_db), source="/bench", clock=SystemClock()
    )
    try:
        report.memory.start()
        rate = await fill(store, total)
        report.add(
            "append  ours, bulk (info)",
            rate,
            "events/s",
            f"{total:,} events, {BULK_STREAMS_PER_TX} streams x {EVENTS_PER_BULK_STREAM}/tx",
        )
        await create_topic(bootstrap, topic, PARTITIONS)
        report.memory.start()
        rate = await relay_rate(database_url(admin_url, pipe_db), topic, bootstrap, total)
        report.add(
            "relay   outbox -> Kafka",
            rate,
            "events/s",
            f"{total:,} events, {PARTITIONS} partitions, default batch",
        )

        # Raw, raw + decode and projector runs take turns, RUNS rounds, each kind's best kept:
        # whatever slows the process down as it runs (its heap, and so the garbage collector's
        # work, grows) falls on every kind alike.
        kinds = ("raw", "decode", "project")
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        memory: dict[str, tuple[int, str]] = {}
        batch_size = 0
        for i in range(RUNS):
            for kind in kinds:
                report.memory.start()
                if kind == "project":
                    run_name = f"{name}.{i}"
                    topics.append(f"{run_name}.dlq")
                    rate, batch_size = await projector_rate(
                        engine, bootstrap, topic, run_name, total
                    )
                else:
                    group = f"bench.raw.{run_id}.{kind}.{i}"
                    rate = await raw_rate(bootstrap, topic, group, total, decode=kind == "decode")
                rates[kind].append(rate)
                peak = report.memory.peak_kib()
                if peak >= memory.get(kind, (-1, ""))[0]:
                    memory[kind] = (peak, report.memory.report())
        fetch = f", getmany({RAW_MAX_RECORDS})"
        for kind, label, unit, detail in (
            ("raw", "consume raw aiokafka", "records", fetch),
            ("decode", "consume raw aiokafka + decode_record (info)", "records", fetch),
            ("project", "project counting projection (ProjectorRunner)", "events", ""),
        ):
            report.add(
                label,
                max(rates[kind]),
                f"{unit}/s",
                _runs(rates[kind], total, unit) + (detail or f", batch {batch_size}"),
                memory[kind][1],
            )
        report.verdict(
            "projector / raw consumer",
            max(rates["project"]) / max(rates["raw"]),
            PROJECTOR_TARGET,
            percent=True,
        )
    finally:
        await store.close()
        await engine.dispose()


# --- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def databases(admin_url: str, run_id: str) -> Iterator[None]:
    """Create the bench's databases and drop them afterwards, whatever happens."""
    names = [f"bench_{role}_{run_id}" for role in ("ours", "es", "pipe")]
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


def server_version(admin_url: str) -> str:
    """Return the PostgreSQL server version."""
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


async def main(args: argparse.Namespace) -> None:
    """Run every part and print the table."""
    admin_url, bootstrap = pg_admin_url(), kafka_bootstrap()
    run_id = uuid.uuid4().hex[:8]
    memory = Memory(trace=args.tracemalloc)
    if memory.trace:
        tracemalloc.start()
    report = Report(memory)
    parts = urlsplit(admin_url)
    header = (
        f"ICT Cadastre kernel bench, run {run_id}: PostgreSQL {server_version(admin_url)} at "
        f"{parts.hostname}:{parts.port}, Kafka {bootstrap}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s)" + (", tracemalloc ON (rates slowed)" if memory.trace else "")
    )
    out(header)
    started = time.perf_counter()
    topics: list[str] = []
    with databases(admin_url, run_id):
        try:
            out("part 1: appends")
            await bench_appends(report, admin_url, run_id, args.seconds)
            out("part 2-3: relay, consumers, projector")
            await bench_pipeline(
                report,
                admin_url=admin_url,
                bootstrap=bootstrap,
                run_id=run_id,
                total=args.events,
                topics=topics,
            )
        finally:
            await delete_topics(bootstrap, topics)
    report.print(header)
    out(
        f"memory: peak = VmHWM over the phase (+ growth over its start RSS), maxrss = ru_maxrss of "
        f"the process so far; total {time.perf_counter() - started:.0f} s"
    )


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="target length of one run")
    parser.add_argument("--events", type=int, default=50_000, help="events relayed and projected")
    parser.add_argument("--tracemalloc", action="store_true", help="add Python heap peaks (slow)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
