"""Units import benchmark: the full real national list (15,053 rows) through the bulk import.

What it measures (one run, fresh databases dropped at the end):

1. Seed, first run: `units.seed` on an empty, migrated units database: reference lists, the tree
   roots, then every row of services/units/data/gr_school_units.csv through `units.bulkimport`
   (validation, `handlers.load_unit`, `handlers.register_unit` with its tree lock and template
   locations: one append per row). Rows/s, units created per second, the count per outcome, and
   the refused rows with their reasons.
2. Seed, second run on the same database: every row must come out unchanged and nothing is
   appended (checked; the run FAILs otherwise). Rows/s.
3. Baseline, same run: the same number of `UnitRegistered` events appended one per stream with
   `EventStore.append` and nothing else (no validation, no reads, no locations), on a second fresh
   database: what the import costs above the bare event store.
4. Memory per phase: peak RSS (VmHWM, reset at each phase start) and its growth over the RSS at the
   start of the phase. The import streams the file row by row, so the growth must stay far below
   what holding the 15,053 rows would take.

Run: `make bench` or `python -m tests.bench.bench_units_import [--limit N]`.
Infrastructure: PostgreSQL admin URL from TEST_PG_ADMIN_URL (else PG_ADMIN_URL of
deploy/local.env).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from shared.clock import FixedClock
from shared.db import create_engine
from shared.events.units import UnitRegistered
from shared.eventstore import AppendContext, EventStore
from shared.migrate import service_versions_dir, upgrade
from tests.bench.bench_kernel import database_url, out, pg_admin_url
from units.bulkimport import read_csv_rows
from units.reference import data_folder
from units.seed import SEED_ACTOR, UNITS_SOURCE, SeedReport, seed

NOW = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
SCHOOL_LIST = "gr_school_units.csv"


def _status_kib(field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


class Memory:
    """Peak RSS of one phase (VmHWM reset at its start) and its growth over the start RSS."""

    def __init__(self) -> None:
        self.start_kib = 0

    def start(self) -> None:
        """Begin a phase."""
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.start_kib = _status_kib("VmRSS")

    def report(self) -> str:
        """Return "peak MiB (+growth MiB)" for the phase so far."""
        peak = _status_kib("VmHWM")
        return f"peak RSS {peak / 1024:.0f} MiB (+{(peak - self.start_kib) / 1024:.1f} MiB)"


@contextlib.contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """Create database `name`, yield its SQLAlchemy URL (psycopg driver), drop it afterwards."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )
    try:
        yield database_url(admin_url, name, driver="psycopg")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def run_seed(url: str, file: Path, limit: int | None) -> tuple[SeedReport, float, int]:
    """Seed the database at `url`; return the report, the seconds it took, and events appended."""
    clock = FixedClock(NOW)
    engine = create_engine(url, pool_size=2)
    store = await EventStore.open(url, source=UNITS_SOURCE, clock=clock)
    try:
        before = await store.last_position()
        started = time.perf_counter()
        report = await seed(engine=engine, store=store, clock=clock, file=file, limit=limit)
        elapsed = time.perf_counter() - started
        return report, elapsed, await store.last_position() - before
    finally:
        await store.close()
        await engine.dispose()


async def run_baseline(url: str, file: Path, count: int) -> float:
    """Append `count` bare `UnitRegistered` events, one new stream each; return the seconds."""
    store = await EventStore.open(url, source=UNITS_SOURCE, clock=FixedClock(NOW))
    context = AppendContext(actor=SEED_ACTOR)
    try:
        rows = [row for _, row in read_csv_rows(file, limit=count)]
        started = time.perf_counter()
        for index, row in enumerate(rows):
            event = UnitRegistered(
                unit_id=f"b{index:07d}",
                parent_id=None,
                name=row["name"] or "-",
                unit_type=row["unit_type"] or "-",
                registered_on=date(2026, 9, 1),
            )
            await store.append(event.unit_id, [event], expected_version=0, context=context)
        return time.perf_counter() - started
    finally:
        await store.close()


def describe(report: SeedReport) -> Iterator[str]:
    """Yield the seed report's lines, indented."""
    for line in report.lines():
        yield "    " + line


async def main(limit: int | None) -> int:
    """Run the benchmark and print the report; 1 if the re-run was not all unchanged."""
    admin = pg_admin_url()
    file = data_folder() / SCHOOL_LIST
    run_id = uuid.uuid4().hex[:8]
    memory = Memory()
    status = 0
    out(f"units import bench: {file.name} ({file.stat().st_size / 1024 / 1024:.1f} MiB)")
    with (
        fresh_database(admin, f"bench_units_import_{run_id}") as url,
        fresh_database(admin, f"bench_units_baseline_{run_id}") as baseline_url,
    ):
        upgrade(url, service_versions_dir("units"))
        upgrade(baseline_url, service_versions_dir("units"))

        memory.start()
        first, seconds, appended = await run_seed(url, file, limit)
        counts = first.summary.to_json()
        rows = counts["rows"]
        out(
            f"1. seed, first run: {rows} rows in {seconds:.1f} s = {rows / seconds:.0f} rows/s;"
            f" {counts['created'] / seconds:.0f} units created/s; {appended} events appended;"
            f" {memory.report()}"
        )
        for line in describe(first):
            out(line)

        memory.start()
        again, seconds_again, appended_again = await run_seed(url, file, limit)
        again_counts = again.summary.to_json()
        unchanged = again_counts["unchanged"] == rows - counts["error"] and appended_again == 0
        out(
            f"2. seed, re-run: {again_counts['rows']} rows in {seconds_again:.1f} s ="
            f" {again_counts['rows'] / seconds_again:.0f} rows/s; {again_counts};"
            f" {appended_again} events appended; {memory.report()}"
            f" -> {'PASS' if unchanged else 'FAIL'} (every imported row unchanged)"
        )
        status = 0 if unchanged else 1

        memory.start()
        sample = min(rows, 5000)
        bare = await run_baseline(baseline_url, file, sample)
        out(
            f"3. baseline: {sample} bare UnitRegistered appends in {bare:.1f} s ="
            f" {sample / bare:.0f} appends/s; the import creates units at"
            f" {counts['created'] / seconds / (sample / bare):.0%} of that rate"
            f" (it also validates, reads the unit and its parent, takes the tree lock and"
            f" appends the template locations); {memory.report()}"
        )
    return status


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, help="only the first N rows (default: all)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.limit)))


if __name__ == "__main__":
    cli()
