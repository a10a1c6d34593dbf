"""Reference lists of the education administration: regions, directorates, unit types, places.

Why this exists: the unit tree is built from them (a directorate's registry code and region, a
unit type's education level) and the bulk import checks rows against them. They are copied into
``services/units/data`` with their provenance (PROVENANCE.md there) and loaded into the units
database by an idempotent import: each row is upserted by its source id, and a row whose values
did not change is not rewritten, so a re-run reports everything unchanged.

Usage::

    counts = await load_reference_data(engine)          # {"ref_regions": LoadCount(...), ...}
    regions = await list_regions(connection)            # with `display_name` for people
    python -m units.seed                                # loads these, then the unit tree

Notes:
- Names are stored exactly as given (Greek capitals, the source's own spacing and spelling:
  "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΓΥΜΝΑΣΙΟ " keeps its trailing space); `display_name` (shared.greek) gives the
  form shown to people, and comparisons go through `shared.greek.fold`.
- These are reference tables, not facts of the unit tree: they are not event-sourced. The tree
  itself (which directorate exists, under which region) is made of `UnitRegistered` events
  written by the bulk import.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import NAMING_CONVENTION
from shared.greek import display_name, fold
from shared.settings import REPO_ROOT

DATA_FOLDER_PARTS = ("services", "units", "data")

# Education levels as mmsch names them; a directorate's level is read from its name.
PRIMARY = "primary"
SECONDARY = "secondary"
OTHER = "other"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

regions = Table(
    "ref_regions",
    metadata,
    Column("region_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    # The regional directorate's own Ministry registry code (gr_region_registry_codes.csv).
    Column("registry_code", String(32), nullable=True),
)

directorates = Table(
    "ref_directorates",
    metadata,
    Column("directorate_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("registry_code", String(32), nullable=False, unique=True),
    Column("level", String(16), nullable=False),
    Column("region_id", Integer, nullable=True),
    Column("ldap_ou", Text, nullable=True),
    Column("third_level_dns", Text, nullable=True),
    Column("implementation_entity", Text, nullable=True),
)

unit_types = Table(
    "ref_unit_types",
    metadata,
    Column("unit_type_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("initials", Text, nullable=True),
    Column("category_id", Integer, nullable=True),
    Column("category", Text, nullable=True),
    Column("education_level_id", Integer, nullable=True),
    Column("education_level", Text, nullable=True),
)

prefectures = Table(
    "ref_prefectures",
    metadata,
    Column("prefecture_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
)

municipalities = Table(
    "ref_municipalities",
    metadata,
    Column("municipality_id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("prefecture_id", Integer, nullable=True),
)


def data_folder(roots: Sequence[Path] | None = None) -> Path:
    """Return ``services/units/data`` under the checkout, or under the working directory."""
    for root in roots if roots is not None else (REPO_ROOT, Path.cwd()):
        candidate = root.joinpath(*DATA_FOLDER_PARTS)
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("services/units/data not found under the checkout or the cwd")


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Yield the rows of a UTF-8 CSV file one at a time (a BOM, if any, is skipped)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from csv.DictReader(handle)


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.strip() else None


def _text_or_none(text: str | None) -> str | None:
    return text if text else None


def directorate_level(name: str) -> str:
    """Return `primary`, `secondary` or `other` from a directorate's name (Π.Ε. / Δ.Ε.)."""
    folded = fold(name)
    if " π.ε. " in f" {folded} ":
        return PRIMARY
    if " δ.ε. " in f" {folded} ":
        return SECONDARY
    return OTHER


def region_rows(folder: Path) -> list[dict[str, Any]]:
    """Return the regions with their registry codes, as rows of `ref_regions`."""
    codes = {
        row["region_edu_admin_id"]: row["registry_code"]
        for row in read_csv(folder / "gr_region_registry_codes.csv")
    }
    return [
        {
            "region_id": int(row["region_edu_admin_id"]),
            "name": row["region_edu_admin"],
            "registry_code": codes.get(row["region_edu_admin_id"]),
        }
        for row in read_csv(folder / "gr_region_edu_admins.csv")
    ]


def directorate_rows(folder: Path) -> list[dict[str, Any]]:
    """Return the directorates of primary / secondary education, as rows of `ref_directorates`."""
    return [
        {
            "directorate_id": int(row["edu_admin_id"]),
            "name": row["edu_admin"],
            "registry_code": row["registry_no"],
            "level": directorate_level(row["edu_admin"]),
            "region_id": _int_or_none(row["region_edu_admin_id"]),
            "ldap_ou": _text_or_none(row["parent_rdn"]),
            "third_level_dns": _text_or_none(row["third_level_dns"]),
            "implementation_entity": _text_or_none(row["implementation_entity_initials"]),
        }
        for row in read_csv(folder / "gr_edu_admins.csv")
    ]


def unit_type_rows(folder: Path) -> list[dict[str, Any]]:
    """Return the 36 unit types, as rows of `ref_unit_types`."""
    return [
        {
            "unit_type_id": int(row["unit_type_id"]),
            "name": row["unit_type"],
            "initials": _text_or_none(row["initials"]),
            "category_id": _int_or_none(row["category_id"]),
            "category": _text_or_none(row["category"]),
            "education_level_id": _int_or_none(row["education_level_id"]),
            "education_level": _text_or_none(row["education_level"]),
        }
        for row in read_csv(folder / "gr_unit_types.csv")
    ]


def prefecture_rows(folder: Path) -> list[dict[str, Any]]:
    """Return the prefectures, as rows of `ref_prefectures`."""
    return [
        {"prefecture_id": int(row["prefecture_id"]), "name": row["prefecture"]}
        for row in read_csv(folder / "gr_prefectures.csv")
    ]


def municipality_rows(folder: Path) -> list[dict[str, Any]]:
    """Return the municipalities with their prefecture, as rows of `ref_municipalities`."""
    return [
        {
            "municipality_id": int(row["municipality_id"]),
            "name": row["municipality"],
            "prefecture_id": _int_or_none(row["prefecture_id"]),
        }
        for row in read_csv(folder / "gr_municipalities.csv")
    ]


# Loaded in this order; each list is small (at most a few hundred rows).
REFERENCE_LISTS: tuple[tuple[Table, Any], ...] = (
    (regions, region_rows),
    (directorates, directorate_rows),
    (unit_types, unit_type_rows),
    (prefectures, prefecture_rows),
    (municipalities, municipality_rows),
)


@dataclass(frozen=True, slots=True)
class LoadCount:
    """What loading one reference list did."""

    created: int
    updated: int
    unchanged: int


async def _upsert(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]
) -> LoadCount:
    if not rows:
        return LoadCount(0, 0, 0)
    key = next(iter(table.primary_key.columns))
    values = [c for c in table.columns if not c.primary_key]
    inserting = insert(table).values(rows)
    excluded = inserting.excluded
    # Rewrite a row only when a value differs, so a re-run changes nothing and says so.
    statement = inserting.on_conflict_do_update(
        index_elements=[key],
        set_={c.name: excluded[c.name] for c in values},
        where=tuple_(*values).is_distinct_from(tuple_(*(excluded[c.name] for c in values))),
    ).returning(key, literal_column("xmax = 0").label("inserted"))
    written = (await connection.execute(statement)).all()
    created = sum(1 for _, inserted in written if inserted)
    updated = len(written) - created
    return LoadCount(created, updated, len(rows) - len(written))


async def load_reference_data(
    engine: AsyncEngine, folder: Path | None = None
) -> dict[str, LoadCount]:
    """Load every reference list into its table, in one transaction; return what each did."""
    source = folder if folder is not None else data_folder()
    counts: dict[str, LoadCount] = {}
    async with engine.begin() as connection:
        for table, read in REFERENCE_LISTS:
            counts[table.name] = await _upsert(connection, table, read(source))
    return counts


async def create_tables(connection: AsyncConnection) -> None:
    """Create the reference tables if they do not exist (tests; production uses migrations)."""
    await connection.run_sync(metadata.create_all)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class ReferenceEntry:
    """One entry of a reference list, as stored and as shown to people."""

    id: int
    name: str
    display_name: str
    registry_code: str | None = None
    parent_id: int | None = None  # a directorate's region, a municipality's prefecture


def _entry(
    id_: int, name: str, registry_code: str | None = None, parent_id: int | None = None
) -> ReferenceEntry:
    return ReferenceEntry(id_, name, display_name(name.strip()), registry_code, parent_id)


async def list_regions(connection: AsyncConnection) -> list[ReferenceEntry]:
    """Return the regional directorates in id order."""
    rows = await connection.execute(select(regions).order_by(regions.c.region_id))
    return [_entry(r.region_id, r.name, r.registry_code) for r in rows]


async def list_directorates(connection: AsyncConnection) -> list[ReferenceEntry]:
    """Return the directorates in id order, each with its registry code and region."""
    rows = await connection.execute(select(directorates).order_by(directorates.c.directorate_id))
    return [_entry(r.directorate_id, r.name, r.registry_code, r.region_id) for r in rows]


async def list_unit_types(connection: AsyncConnection) -> list[ReferenceEntry]:
    """Return the unit types in id order."""
    rows = await connection.execute(select(unit_types).order_by(unit_types.c.unit_type_id))
    return [_entry(r.unit_type_id, r.name) for r in rows]


async def list_prefectures(connection: AsyncConnection) -> list[ReferenceEntry]:
    """Return the prefectures in id order."""
    rows = await connection.execute(select(prefectures).order_by(prefectures.c.prefecture_id))
    return [_entry(r.prefecture_id, r.name) for r in rows]


async def list_municipalities(connection: AsyncConnection) -> list[ReferenceEntry]:
    """Return the municipalities in id order, each with its prefecture."""
    rows = await connection.execute(
        select(municipalities).order_by(municipalities.c.municipality_id)
    )
    return [_entry(r.municipality_id, r.name, None, r.prefecture_id) for r in rows]


def known_names(entries: Sequence[ReferenceEntry]) -> frozenset[str]:
    """Return the folded names of `entries`, for accent-, case- and space-blind lookups."""
    return frozenset(fold(entry.name) for entry in entries)


def index_by_code(entries: Sequence[ReferenceEntry]) -> Mapping[str, ReferenceEntry]:
    """Return `entries` by registry code (entries without one are left out)."""
    return {entry.registry_code: entry for entry in entries if entry.registry_code}
