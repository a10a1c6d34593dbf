"""Test kit for the import tests: a migrated units database with its event store, and slices of
the real national list of units."""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import FixedClock
from shared.db import create_engine
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade
from units.reference import data_folder, read_csv
from units.seed import UNITS_SOURCE

NOW = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
COLUMNS = [
    "registry_code",
    "mm_id",
    "name",
    "unit_type",
    "operation_shift",
    "directorate",
    "directorate_code",
    "region_edu_admin",
    "municipality",
    "address",
    "postal_code",
    "source_row_id",
    "detail_row_id",
]


@dataclass(frozen=True, slots=True)
class UnitsDatabase:
    """A migrated units database: its URL, an engine on it, and its event store."""

    url: str
    engine: AsyncEngine
    store: EventStore
    clock: FixedClock


@asynccontextmanager
async def units_database(url: str) -> AsyncIterator[UnitsDatabase]:
    """Migrate the database at `url` (kernel + units branches) and open engine and store on it."""
    upgrade(url, service_versions_dir("units"))
    clock = FixedClock(NOW)
    engine = create_engine(url, pool_size=2)
    store = await EventStore.open(url, source=UNITS_SOURCE, clock=clock)
    try:
        yield UnitsDatabase(url, engine, store, clock)
    finally:
        await store.close()
        await engine.dispose()


def real_list() -> Path:
    """Return the path of the real national list of units."""
    return data_folder() / "gr_school_units.csv"


Picker = Callable[[dict[str, str]], bool]

SEVEN_DIGITS = re.compile(r"[0-9]{7}")

# How many rows of each kind the slice takes, in file order: the mix the issue asks for.
SLICE_QUOTAS: tuple[tuple[str, int, Picker], ...] = (
    ("ΓΥΜΝΑΣΙΟ", 60, lambda r: r["unit_type"] == "ΓΥΜΝΑΣΙΟ" and "ΙΔΙΩΤ" not in r["name"]),
    ("ΓΕΝΙΚΟ ΛΥΚΕΙΟ", 50, lambda r: r["unit_type"] == "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
    ("ΝΗΠΙΑΓΩΓΕΙΟ", 60, lambda r: r["unit_type"] == "ΝΗΠΙΑΓΩΓΕΙΟ"),
    ("ΔΗΜΟΤΙΚΟ", 30, lambda r: r["unit_type"] == "ΔΗΜΟΤΙΚΟ"),
    ("ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΛΥΚΕΙΟ", 15, lambda r: r["unit_type"] == "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΛΥΚΕΙΟ"),
    ("SEK", 20, lambda r: r["registry_code"].startswith("SEK")),
    ("8 digits", 5, lambda r: r["registry_code"].isdigit() and len(r["registry_code"]) == 8),
    (
        "other codes",
        10,
        lambda r: (
            not SEVEN_DIGITS.fullmatch(r["registry_code"])
            and not r["registry_code"].startswith("SEK")
            and not r["registry_code"].isdigit()
        ),
    ),
    ("private", 30, lambda r: "ΙΔΙΩΤΙΚ" in r["name"]),
    ("regions", 15, lambda r: r["unit_type"] == "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ"),
    ("directorates", 20, lambda r: r["unit_type"].startswith("ΔΙΕΥΘΥΝΣΗ")),
)


def write_slice(target: Path) -> dict[str, list[dict[str, str]]]:
    """Write a mixed slice (about 300 rows) of the real list to `target`; return it by kind.

    Rows keep the real file's columns and order; the secondary schools picked bring their own
    directorate rows along only if the quota for directorates picks them, so some schools hang
    under directorates registered from the reference lists instead.
    """
    taken: dict[str, list[dict[str, str]]] = {kind: [] for kind, _, _ in SLICE_QUOTAS}
    chosen: list[dict[str, str]] = []
    for row in read_csv(real_list()):
        for kind, quota, picks in SLICE_QUOTAS:
            if len(taken[kind]) < quota and picks(row):
                taken[kind].append(row)
                chosen.append(row)
                break
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(chosen)
    return taken
