"""Equipment benchmark: registrations through HTTP (single, bulk), as-of and listing latency.

What it measures (one run, a fresh database dropped at the end, the real `equipment-api` process
served by uvicorn on a local port, tokens from a throw-away development issuer):

1. Single registrations: `--items` `POST /items` requests (a new item id and serial each), from
   `--clients` concurrent keep-alive HTTP connections (a lean client: the requests are built
   before the clock starts). Items/s. Target >= 500/s.
2. Bulk import: one CSV of `--bulk` rows (Greek headers) `POST /units/{unit}/equipment-imports`.
   Items created per second of the whole request (upload, validation, appends, per-row results).
   Target >= 5,000 items/s.
3. As-of inventory: a unit with 300 items in stock after 10 years of history (470 registered, 190
   withdrawn, 20 transferred in; moves, status changes: about 4,500 of its events among 20,000 of
   other units), written straight to the event store at their historical times. `GET
   /units/{unit}/inventory/as-of?at=…` at `--samples` random instants of the 10 years: first pass
   on a store without checkpoints (the queries build them), then a second pass at new instants.
   p50/p95 in ms. Target p95 <= 100 ms (on the second pass; the first is shown).
4. Listing: `unit_items_view` filled directly with COPY (1,000,000 items over 16,000 units, i.e.
   no projector involved: this measures the query, not the projection), then `GET
   /units/{unit}/items?limit=50` for a 300-item unit, `--samples` times. p50/p95 in ms. Target
   p95 <= 50 ms.
5. CPU beside the registration figures: milliseconds of CPU per item spent by the API
   process(es), by PostgreSQL's backends of the bench database and by this client. On a shared
   box they say what the service costs whatever else runs; 2 cores / their sum bounds the rate.
6. Memory beside each figure: the API process's peak RSS over the phase (VmHWM, reset through
   /proc/<pid>/clear_refs at the phase start) and its growth over its RSS at the phase start.

How to read it: rates and latencies are wall time on this machine, client and server sharing its
cores; the exit status is 0 even when a target fails (it is a report), non-zero only when the
bench itself could not run.

Run: `make bench` or `python -m tests.bench.bench_equipment [--items 3000] [--bulk 20000]`.
Infrastructure: PostgreSQL admin URL from TEST_PG_ADMIN_URL (else PG_ADMIN_URL of
deploy/local.env), Kafka from TEST_KAFKA_BOOTSTRAP_SERVERS (only for the API's readiness probe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from shared.clock import ATHENS, FixedClock
from shared.devissuer import load_or_create
from shared.events.base import Event
from shared.events.equipment import (
    InventoryTransferClosed,
    InventoryTransferOpened,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferAccepted,
    ItemTransferDispatched,
    ItemWithdrawn,
    ProductApproved,
    ProductProposed,
    TransferOutcome,
)
from shared.eventstore import EventStore, libpq_url
from shared.migrate import service_versions_dir, upgrade
from tests.bench.bench_kernel import database_url, kafka_bootstrap, out, pg_admin_url

ROOT = Path(__file__).resolve().parents[2]
SINGLE_TARGET = 500.0
BULK_TARGET = 5000.0
ASOF_P95_MS = 100.0
LISTING_P95_MS = 50.0
USER = "bench-user"
SINGLE_UNIT, BULK_UNIT, ASOF_UNIT, LIST_UNIT = "9000001", "9000002", "9000003", "9000004"
LISTING_ITEMS = 1_000_000
LISTING_UNITS = 16_000
PHASES = frozenset({"single", "bulk", "asof", "listing"})


# --- memory of the API process -------------------------------------------------------------------


@dataclass
class ServerMemory:
    """Peak RSS of the API process per phase (VmHWM reset through clear_refs).

    With several uvicorn workers the API is the supervisor and its worker processes: the figures
    are their sums (peaks of different processes added, so an upper bound of the joint peak).
    """

    pid: int
    start_kib: int = 0

    def _pids(self) -> list[int]:
        pids = [self.pid]
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
        return pids

    @staticmethod
    def _status(pid: int, name: str) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(name + ":"):
                    return int(line.split()[1])
        return 0

    def start(self) -> None:
        """Begin a phase."""
        for pid in self._pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.start_kib = sum(self._status(pid, "VmRSS") for pid in self._pids())

    def report(self) -> str:
        """Return 'peak MiB (+growth)' for the phase."""
        peak = sum(self._status(pid, "VmHWM") for pid in self._pids())
        return f"{peak / 1024:5.0f} (+{max(0, peak - self.start_kib) / 1024:4.0f})"


@dataclass
class CpuMeter:
    """CPU time per item of a phase: the API process(es), PostgreSQL's backends, this client.

    Why: the bench box has two cores shared by the client, the API and PostgreSQL (and by whatever
    else runs on it), so a rate alone mixes the service's cost with the machine's load. CPU
    milliseconds per item are what the service costs whatever the load; 2 cores / their sum is
    the rate this box could reach with nothing else running. PostgreSQL's figure counts the
    backends connected to the bench database (not its WAL writer or checkpointer).
    """

    memory: ServerMemory
    database: str
    _start: tuple[float, float, float] = (0.0, 0.0, 0.0)

    _TICK = os.sysconf("SC_CLK_TCK")

    @classmethod
    def _cpu_s(cls, pid: int) -> float:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / cls._TICK
        return 0.0

    def _backends(self) -> list[int]:
        prefix = f"postgres: postgres {self.database} ".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "cmdline").read_bytes().startswith(prefix):
                        found.append(int(entry.name))
        return found

    def _now(self) -> tuple[float, float, float]:
        api = sum(self._cpu_s(pid) for pid in self.memory._pids())
        database = sum(self._cpu_s(pid) for pid in self._backends())
        return api, database, time.process_time()

    def start(self) -> None:
        """Begin a phase."""
        self._start = self._now()

    def report(self, items: int) -> str:
        """Return 'CPU ms/item: api …, pg …, client …' since `start`."""
        api, database, client = (
            (now - then) * 1000 / max(1, items)
            for now, then in zip(self._now(), self._start, strict=True)
        )
        return f"CPU ms/item: api {api:.2f}, pg {database:.2f}, client {client:.2f}"


@dataclass
class Report:
    """Rows of the table and the verdicts."""

    rows: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def add(self, label: str, value: str, memory: str, detail: str) -> None:
        """Record one figure and echo it."""
        self.rows.append(f"{label:<46} {value:>18} {memory:>15}  {detail}")
        out(f"  .. {label}: {value} ({detail})")

    def verdict(self, label: str, shown: str, target: str, ok: bool) -> None:
        """Record a figure against its target."""
        self.verdicts.append(f"{label:<46} {shown:>18}   target {target:<12} " + (
            "PASS" if ok else "FAIL  <<<"
        ))  # fmt: skip

    def print(self) -> None:
        """Print the table."""
        width = 112
        out()
        out("=" * width)
        workers = os.environ.get("EQUIPMENT_WORKERS") or "1 (default)"
        out(f"equipment bench (API: uvicorn, workers: {workers}; PostgreSQL as configured)")
        out("=" * width)
        out(f"{'figure':<46} {'value':>18} {'API peak MiB':>15}  detail")
        out("-" * width)
        for row in self.rows:
            out(row)
        out("-" * width)
        for line in self.verdicts:
            out(line)
        out("=" * width)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --- setup ----------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def seed_directory(url: str, product_id: uuid.UUID) -> None:
    """Make the bench units, their locations, the user's grants and an approved product known."""
    now = datetime.now(UTC)
    units = [SINGLE_UNIT, BULK_UNIT, ASOF_UNIT, LIST_UNIT]
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as db:
        for unit in units:
            await db.execute(
                "INSERT INTO authz_units_view (unit_id, parent_id, status) VALUES (%s, NULL,"
                " 'active')",
                (unit,),
            )
            for role in ("entry", "manage", "certify"):
                await db.execute(
                    "INSERT INTO authz_grants_view (user_id, unit_id, role, is_recursive,"
                    " granted_at) VALUES (%s, %s, %s, false, %s)",
                    (USER, unit, role, now),
                )
            await db.execute(
                "INSERT INTO equipment_units_view (unit_id, parent_id, name, status, version,"
                " position) VALUES (%s, NULL, %s, 'active', 1, 1)",
                (unit, f"ΓΥΜΝΑΣΙΟ ΔΟΚΙΜΩΝ {unit}"),
            )
            for number, name in ((1, "Εργαστήριο Πληροφορικής"), (2, "Γραφείο")):
                await db.execute(
                    "INSERT INTO equipment_locations_view (location_id, unit_id, name, kind,"
                    " is_retired) VALUES (%s, %s, %s, 'office', false)",
                    (f"{unit}-L{number}", unit, name),
                )
        await db.execute(
            "INSERT INTO products_view (product_id, category_id, manufacturer, model,"
            " attributes, status, version, position) VALUES (%s, 'laptop', 'Dell',"
            " 'Latitude 5520', '{}', 'approved', 2, 2)",
            (product_id,),
        )


@contextlib.asynccontextmanager
async def api_process(url: str, port: int, issuer_dir: Path) -> AsyncIterator[int]:
    """Run `equipment-api` on `port` against `url`; yield its pid once it answers."""
    issuer = load_or_create(issuer_dir)
    env = {
        **os.environ,
        "EQUIPMENT_DATABASE_URL": url,
        "EQUIPMENT_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(),
        "EQUIPMENT_PORT": str(port),
        "EQUIPMENT_HOST": "127.0.0.1",
        "EQUIPMENT_AUTH_ISSUER": issuer.issuer,
        "EQUIPMENT_AUTH_AUDIENCE": issuer.audience,
        "EQUIPMENT_AUTH_JWKS_FILE": str(issuer_dir / "jwks.json"),
    }
    process = subprocess.Popen(  # noqa: ASYNC220  (started once; waited for below with a deadline)
        [str(ROOT / ".venv" / "bin" / "equipment-api")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("equipment-api did not start")
                await asyncio.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 10)
        if process.poll() is None:
            process.kill()


# --- 1. single registrations ----------------------------------------------------------------------


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection that sends pre-built requests and reads each answer.

    Why not httpx here: on the 2-core bench box the load generator shares the cores with the API
    and PostgreSQL, and httpx spent about 2 ms of CPU per request (as much as PostgreSQL), so the
    figure measured the client as much as the service. The requests are the same HTTP requests
    (method, path, Host, Authorization, Content-Type, Content-Length, JSON body); only the
    client's own work is less: the bytes are built before the clock starts, and an answer is read
    by its Content-Length (the API answers JSON with one; chunked answers are refused here).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> KeepAliveConnection:
        """Connect to the API on 127.0.0.1:`port`."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; return the answer's status code and body."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                raise RuntimeError("chunked answer: not expected from POST /items")
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def registration_request(port: int, token: str, body: dict[str, Any]) -> bytes:
    """Return the bytes of one `POST /items` with `body` as JSON (as httpx spells it)."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    head = (
        f"POST /items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n"
        f"Connection: keep-alive\r\nUser-Agent: bench-equipment\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    )
    return head.encode("ascii") + content


async def single_registrations(
    port: int, token: str, product_id: uuid.UUID, count: int, clients: int
) -> float:
    """POST /items `count` times from `clients` concurrent keep-alive clients; return items/s."""
    requests = [
        registration_request(port, token, {
            "item_id": str(uuid.uuid4()),
            "unit_id": SINGLE_UNIT,
            "product_id": str(product_id),
            "location_id": f"{SINGLE_UNIT}-L1",
            "serial_number": f"BENCH-{number:07d}-{uuid.uuid4().hex[:6]}",
        })
        for number in range(count)
    ]  # fmt: skip
    requests.reverse()  # popped from the end: sent in order
    connections = [await KeepAliveConnection.open(port) for _ in range(clients)]
    failures: list[str] = []

    async def worker(connection: KeepAliveConnection) -> None:
        while requests:
            status, answer = await connection.send(requests.pop())
            if status != 201:
                failures.append(answer[:200].decode(errors="replace"))

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(connection) for connection in connections))
        elapsed = time.perf_counter() - start
    finally:
        for connection in connections:
            await connection.close()
    if failures:
        raise RuntimeError(f"{len(failures)} registrations failed, e.g. {failures[0]}")
    return count / elapsed


# --- 2. bulk import -------------------------------------------------------------------------------


def bulk_csv(rows: int) -> bytes:
    """Return a CSV as a school fills it in: Greek headers, one laptop per row."""
    lines = ["Α/Α,Κατηγορία,Κατασκευαστής,Μοντέλο,Σειριακός αριθμός,Χώρος,Κατάσταση,Κόστος (€)"]
    run = uuid.uuid4().hex[:6]
    lines += [
        f'{n},Φορητός υπολογιστής,Dell,Latitude 5520,BULK-{run}-{n:07d},Γραφείο,Σε χρήση,"650,00"'
        for n in range(1, rows + 1)
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


async def bulk_import(client: httpx.AsyncClient, rows: int) -> tuple[float, dict[str, Any]]:
    """Import `rows` rows in one request; return items created per second and the answer."""
    body = bulk_csv(rows)
    start = time.perf_counter()
    answer = await client.post(
        f"/units/{BULK_UNIT}/equipment-imports",
        content=body,
        headers={"Content-Type": "text/csv", "X-File-Name": "bench.csv"},
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"bulk import failed: {answer.status_code} {answer.text[:300]}")
    result: dict[str, Any] = answer.json()
    return result["created"] / elapsed, result


# --- 3. as-of -------------------------------------------------------------------------------------


def ten_years(start: datetime, rng: random.Random) -> list[tuple[datetime, str, list[Event]]]:
    """Return the as-of unit's and its neighbours' events over ten years, in time order."""
    span = timedelta(days=3650)
    plan: list[tuple[datetime, str, list[Event]]] = []

    def at(fraction: float) -> datetime:
        return start + span * fraction

    def day(instant: datetime) -> date:
        return instant.astimezone(ATHENS).date()

    def register(unit: str, when: datetime, number: int) -> uuid.UUID:
        item = uuid.uuid4()
        plan.append((when, str(item), [ItemRegistered(
            item_id=item, unit_id=unit, product_id=uuid.uuid4(), category_id="laptop",
            manufacturer="Dell", model="Latitude", serial_number=f"H{unit}{number:06d}",
            asset_number=f"{unit}-{number:06d}", location_id=f"{unit}-L1", performed_on=day(when),
        )]))  # fmt: skip
        return item

    def life(unit: str, item: uuid.UUID, born: float, dies: float | None) -> None:
        end = dies if dies is not None else 1.0
        where = 1
        for _ in range(6):
            when = at(rng.uniform(born, end))
            plan.append((when, str(item), [ItemMoved(
                item_id=item, unit_id=unit, from_location_id=f"{unit}-L{where}",
                to_location_id=f"{unit}-L{3 - where}", performed_on=day(when),
            )]))  # fmt: skip
            where = 3 - where
        for status in (ItemStatus.UNDER_REPAIR, ItemStatus.IN_USE):
            when = at(rng.uniform(born, end))
            plan.append((when, str(item), [ItemStatusChanged(
                item_id=item, unit_id=unit, from_status=ItemStatus.IN_USE, to_status=status,
                reason="bench", performed_on=day(when),
            )]))  # fmt: skip
        if dies is not None:
            when = at(dies)
            plan.append((when, str(item), [ItemWithdrawn(
                item_id=item, unit_id=unit, from_status=ItemStatus.IN_USE,
                decision_reference="bench", decided_on=day(when), performed_on=day(when),
            )]))  # fmt: skip

    for number in range(470):
        born = rng.uniform(0.0, 0.6)
        dies = rng.uniform(born + 0.05, 1.0) if number < 190 else None
        item = register(ASOF_UNIT, at(born), number)
        life(ASOF_UNIT, item, born, dies)
    for unit_number in range(40):  # neighbours: 500 events each
        unit = f"80{unit_number:05d}"
        for number in range(50):
            born = rng.uniform(0.0, 0.9)
            life(unit, register(unit, at(born), number), born, None)
    # Transfers in: items of a neighbour dispatched to the as-of unit and accepted.
    for number in range(20):
        source = "8000000"
        item = register(source, at(0.1), 10_000 + number)
        when = at(rng.uniform(0.2, 0.9))
        transfer = uuid.uuid4()
        plan.append((when, str(item), [ItemTransferDispatched(
            item_id=item, unit_id=source, transfer_id=transfer, to_unit_id=ASOF_UNIT,
            from_location_id=f"{source}-L1", performed_on=day(when),
        )]))  # fmt: skip
        later = when + timedelta(days=2)
        plan.append((later, str(item), [ItemTransferAccepted(
            item_id=item, unit_id=ASOF_UNIT, transfer_id=transfer, from_unit_id=source,
            to_location_id=f"{ASOF_UNIT}-L1", performed_on=day(later),
        )]))  # fmt: skip
        for unit in (source, ASOF_UNIT):
            plan.append((when, f"inventory:{unit}", [InventoryTransferOpened(
                unit_id=unit, transfer_id=transfer, item_id=item, from_unit_id=source,
                to_unit_id=ASOF_UNIT, performed_on=day(when),
            )]))  # fmt: skip
            plan.append((later, f"inventory:{unit}", [InventoryTransferClosed(
                unit_id=unit, transfer_id=transfer, item_id=item,
                outcome=TransferOutcome.ACCEPTED, performed_on=day(later),
            )]))  # fmt: skip
    plan.sort(key=lambda entry: entry[0])
    return plan


async def write_history(url: str, plan: list[tuple[datetime, str, list[Event]]]) -> int:
    """Append the plan in time order, 100 events per transaction; return the unit's events."""
    clock = FixedClock(plan[0][0])
    store = await EventStore.open(url, source="/ictcadastre/equipment", clock=clock)
    try:
        for start in range(0, len(plan), 100):
            chunk = plan[start : start + 100]
            clock.set(chunk[-1][0])
            # One entry per stream in a transaction (its events in their order).
            grouped: dict[str, list[Event]] = {}
            for _, stream, events in chunk:
                grouped.setdefault(stream, []).extend(events)
            async with store.transaction() as tx:
                for stream, events in grouped.items():
                    tx.append(stream, events, expected_version=None)
    finally:
        await store.close()
    return sum(
        1 for _, _, events in plan for e in events if getattr(e, "unit_id", None) == ASOF_UNIT
    )


async def as_of_latencies(
    client: httpx.AsyncClient, instants: list[datetime]
) -> tuple[list[float], int]:
    """GET the as-of inventory at each instant; return latencies (ms) and the last item count."""
    latencies: list[float] = []
    count = 0
    for instant in instants:
        start = time.perf_counter()
        answer = await client.get(
            f"/units/{ASOF_UNIT}/inventory/as-of", params={"at": instant.isoformat()}
        )
        latencies.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"as-of failed: {answer.text[:300]}")
        count = answer.json()["item_count"]
    return latencies, count


# --- 4. listing -----------------------------------------------------------------------------------

_LIST_COLUMNS = (
    "item_id", "unit_id", "inventory_unit_id", "product_id", "category_id", "manufacturer", "model",
    "serial_number", "asset_number", "is_legacy_asset_number", "location_id", "status",
    "is_product_pending_approval", "notes", "part_categories", "has_missing_parts",
    "registered_on", "last_performed_on", "version", "position",
)  # fmt: skip


def listing_rows(product_id: uuid.UUID) -> Iterator[tuple[Any, ...]]:
    """Yield 1,000,000 item rows: 300 for the listed unit, the rest over 16,000 units."""
    today = date(2025, 11, 1)
    for number in range(LISTING_ITEMS):
        unit = LIST_UNIT if number < 300 else f"7{number % LISTING_UNITS:06d}"
        yield (
            uuid.uuid4(), unit, unit, product_id, "laptop", "Dell", "Latitude 5520",
            f"L{number:08d}", f"{unit}-{number:07d}", False, f"{unit}-L1", "in_use", False, "",
            "{}", False, today, today, 1, number + 1,
        )  # fmt: skip


async def fill_listing(url: str, product_id: uuid.UUID) -> float:
    """COPY the listing dataset into unit_items_view; return seconds taken."""
    start = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as db:
        statement = sql.SQL("COPY unit_items_view ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in _LIST_COLUMNS)
        )
        async with db.cursor() as cursor, cursor.copy(statement) as copy:
            for row in listing_rows(product_id):
                await copy.write_row(row)
        await db.execute("ANALYZE unit_items_view")
    return time.perf_counter() - start


async def listing_latencies(client: httpx.AsyncClient, samples: int) -> list[float]:
    """GET the first page (50) of the unit's listing `samples` times; return latencies (ms)."""
    latencies: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        answer = await client.get(f"/units/{LIST_UNIT}/items", params={"limit": 50})
        latencies.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200 or len(answer.json()["items"]) != 50:
            raise RuntimeError(f"listing failed: {answer.text[:300]}")
    return latencies


@dataclass
class Run:
    """What the phases measure against: the API's client, its memory, the seeded data."""

    client: httpx.AsyncClient
    port: int
    token: str
    memory: ServerMemory
    cpu: CpuMeter
    report: Report
    product_id: uuid.UUID
    rng: random.Random
    history_start: datetime
    unit_events: int
    copy_s: float


async def run_phases(  # noqa: PLR0917  (the command line's figures, as given)
    run: Run, items: int, bulk: int, clients: int, samples: int, phases: frozenset[str]
) -> None:
    """Run the phases asked for against the API process, adding their figures to `report`."""
    client, memory, report, product_id = run.client, run.memory, run.report, run.product_id
    rng, history_start = run.rng, run.history_start
    unit_events, copy_s = run.unit_events, run.copy_s
    if "single" in phases:
        out("== single registrations")
        await single_registrations(run.port, run.token, product_id, 100, clients)  # warm-up
        memory.start()
        run.cpu.start()
        single = await single_registrations(run.port, run.token, product_id, items, clients)
        report.add("item registrations, single POST /items", f"{single:,.0f} items/s",
                   memory.report(),
                   f"{items} requests, {clients} clients; {run.cpu.report(items)}")  # fmt: skip
        report.verdict("single registrations", f"{single:,.0f}/s", ">= 500/s",
                       single >= SINGLE_TARGET)  # fmt: skip
    if "bulk" in phases:
        out("== bulk import")
        memory.start()
        run.cpu.start()
        rate, answer = await bulk_import(client, bulk)
        report.add("item registrations, bulk import (CSV)", f"{rate:,.0f} items/s",
                   memory.report(),
                   f"{bulk} rows, one request, status {answer['status']};"
                   f" {run.cpu.report(bulk)}")  # fmt: skip
        report.verdict("bulk import", f"{rate:,.0f}/s", ">= 5,000/s",
                       rate >= BULK_TARGET)  # fmt: skip
    if "asof" in phases:
        out("== as-of inventory")
        span = 3650 * 86400
        first = [history_start + timedelta(seconds=rng.uniform(0, span))
                 for _ in range(samples)]  # fmt: skip
        second = [history_start + timedelta(seconds=rng.uniform(0, span))
                  for _ in range(samples)]  # fmt: skip
        memory.start()
        cold, _ = await as_of_latencies(client, first)
        report.add("as-of inventory, first pass (builds checkpoints)",
                   f"p50 {percentile(cold, .5):.1f} p95 {percentile(cold, .95):.1f} ms",
                   memory.report(), f"{samples} instants over 10 years")  # fmt: skip
        memory.start()
        warm, _ = await as_of_latencies(client, second)
        now_count = (await as_of_latencies(client, [datetime.now(UTC)]))[1]
        p95 = percentile(warm, 0.95)
        report.add("as-of inventory, 300-item unit, 10 years",
                   f"p50 {percentile(warm, .5):.1f} p95 {p95:.1f} ms", memory.report(),
                   f"{unit_events:,} unit events; {now_count} items now")  # fmt: skip
        report.verdict("as-of p95", f"{p95:.1f} ms", "<= 100 ms", p95 <= ASOF_P95_MS)
    if "listing" in phases:
        out("== listing")
        await listing_latencies(client, 5)  # warm-up
        memory.start()
        listing = await listing_latencies(client, samples)
        p95 = percentile(listing, 0.95)
        report.add("inventory listing, first page of 50",
                   f"p50 {percentile(listing, .5):.1f} p95 {p95:.1f} ms",
                   memory.report(),
                   f"{LISTING_ITEMS:,} items / {LISTING_UNITS:,} units by COPY"
                   f" in {copy_s:.0f} s")  # fmt: skip
        report.verdict("listing p95", f"{p95:.1f} ms", "<= 50 ms",
                       p95 <= LISTING_P95_MS)  # fmt: skip


# --- main -----------------------------------------------------------------------------------------


async def main(
    items: int, bulk: int, clients: int, samples: int, phases: frozenset[str] = PHASES
) -> int:
    """Run the phases asked for (all by default) on a fresh database; print the table; drop it."""
    admin = pg_admin_url()
    database = f"bench_equipment_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
        )
    url = database_url(admin, database, driver="psycopg")
    report = Report()
    try:
        await asyncio.to_thread(upgrade, url, service_versions_dir("equipment"))
        product_id = uuid.uuid4()
        store = await EventStore.open(url, source="/ictcadastre/equipment", clock=FixedClock(
            datetime.now(UTC)))  # fmt: skip
        await store.append(f"product:{product_id}", [
            ProductProposed(product_id=product_id, category_id="laptop", manufacturer="Dell",
                            model="Latitude 5520", proposed_at=datetime.now(UTC)),
            ProductApproved(product_id=product_id, approved_at=datetime.now(UTC)),
        ], expected_version=0)  # fmt: skip
        await store.close()
        await seed_directory(url, product_id)
        rng = random.Random(20251201)
        history_start = datetime(2015, 9, 1, 8, 0, tzinfo=ATHENS)
        unit_events, copy_s = 0, 0.0
        if "asof" in phases:
            out(f"== writing 10 years of history ({ASOF_UNIT} and 40 neighbours)")
            unit_events = await write_history(url, ten_years(history_start, rng))
        if "listing" in phases:
            out(f"== filling unit_items_view with {LISTING_ITEMS:,} rows by COPY")
            copy_s = await fill_listing(url, product_id)
        with tempfile.TemporaryDirectory() as issuer_dir:
            port = free_port()
            async with api_process(url, port, Path(issuer_dir)) as pid:
                issuer = load_or_create(Path(issuer_dir))
                token = issuer.mint(USER, now=datetime.now(UTC))
                memory = ServerMemory(pid)
                cpu = CpuMeter(memory, database)
                limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {token}"},
                    limits=limits,
                    timeout=60,
                ) as client:
                    await run_phases(
                        Run(client, port, token, memory, cpu, report, product_id, rng,
                            history_start, unit_events, copy_s),
                        items, bulk, clients, samples, phases,
                    )  # fmt: skip
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    report.print()
    return 0


def cli() -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--bulk", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--phases",
        default=",".join(sorted(PHASES)),
        help="comma-separated phases to run: single, bulk, asof, listing (default: all)",
    )
    args = parser.parse_args()
    phases = frozenset(p.strip() for p in args.phases.split(",") if p.strip())
    if unknown := phases - PHASES:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return asyncio.run(main(args.items, args.bulk, args.clients, args.samples, phases))


if __name__ == "__main__":
    sys.exit(cli())
