"""Demo and benchmark data: the reference lists and the real national list of units, as a tree.

Why this exists: `make up` must serve a real tree (Ministry → 13 regional directorates →
directorates of primary / secondary education → 15,053 school and support units), built through
the same bulk import any directorate would use, so the seed also proves the import. Run it as often
as you like: every step is idempotent, and a second run reports every row unchanged.

Usage::

    python -m units.seed                       # UNITS_DATABASE_URL, services/units/data/...
    python -m units.seed --limit 300 --file other.csv

How the tree is built (each level is one streaming pass over the file, so parents exist before
their children and memory stays flat):
1. the reference lists (`units.reference`);
2. the Ministry root (`ypaith`) and, under it, the holding node (`unplaced`,
   ΜΟΝΑΔΕΣ ΧΩΡΙΣ ΔΙΕΥΘΥΝΣΗ (ΠΡΟΣ ΑΝΑΘΕΣΗ), `is_holding_node`): neither is in the national list,
   so their codes are the service's own text codes (`units.domain.validate_code`);
3. the regional directorates: rows whose code gr_region_registry_codes.csv names, under the
   Ministry;
4. the directorates: rows whose code is a directorate of gr_edu_admins.csv, under their region
   (under the Ministry when the reference gives none: ΓΡΑΦΕΙΟ ΜΕΙΟΝΟΤΙΚΗΣ ΕΚΠΑΙΔΕΥΣΗΣ,
   ΣΙΒΙΤΑΝΙΔΕΙΟΣ); a region or directorate the file lacks is registered from the reference lists;
5. every other row: under its `directorate_code` (the 3,478 secondary schools that have one),
   otherwise under the holding node, until an administrator re-parents it. The file has no
   directorate for primary units (SOURCES.md: do not derive it from the code prefix).

Which rows are accepted is the bulk import's stated rule (`units.bulkimport`): non-7-digit codes
pass or fail `units.domain.validate_code`, private schools are accepted and marked ΙΔΙΩΤΙΚΟ; the
report lists every refused row with its reason.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import Clock, SystemClock
from shared.db import create_engine
from shared.events.envelope import Actor
from shared.events.units import GlobalRole
from shared.eventstore import AppendContext, EventStore
from shared.greek import fold
from shared.settings import DatabaseSettings, service_settings_config
from units import handlers
from units.bulkimport import (
    ImportRules,
    ImportSummary,
    Outcome,
    RowResult,
    SourceRow,
    import_units,
    read_csv_rows,
)
from units.commands import RegisterUnit
from units.reference import (
    PRIMARY,
    SECONDARY,
    data_folder,
    directorate_rows,
    load_reference_data,
    region_rows,
    unit_type_rows,
)

MINISTRY_CODE = "ypaith"
MINISTRY_NAME = "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"
MINISTRY_TYPE = "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"
HOLDING_NODE_CODE = "unplaced"
HOLDING_NODE_NAME = "ΜΟΝΑΔΕΣ ΧΩΡΙΣ ΔΙΕΥΘΥΝΣΗ (ΠΡΟΣ ΑΝΑΘΕΣΗ)"
HOLDING_NODE_TYPE = "ΚΟΜΒΟΣ ΑΝΑΜΟΝΗΣ"  # not a unit type of the reference: it is no unit
REGION_TYPE = "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ"
DIRECTORATE_TYPES = {
    PRIMARY: "ΔΙΕΥΘΥΝΣΗ ΠΡΩΤΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ",
    SECONDARY: "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ",
}
SCHOOL_LIST = "gr_school_units.csv"
SEED_ACTOR = Actor("system:seed", GlobalRole.MINISTRY_ADMIN.value)
UNITS_SOURCE = "/ictcadastre/units"


class SeedSettings(DatabaseSettings):
    """The one setting the seed needs: ``UNITS_DATABASE_URL`` (environment or deploy/local.env)."""

    model_config = service_settings_config("UNITS_")


@dataclass(frozen=True, slots=True)
class TreeShape:
    """Where the levels above the schools hang, from the reference lists."""

    regions: dict[str, str]  # region code → name
    directorates: dict[str, tuple[str, str, str]]  # code → (name, unit type, parent code)

    @classmethod
    def from_reference(cls, folder: Path) -> TreeShape:
        """Read the regions (with their codes) and directorates (with their region)."""
        region_code: dict[int, str] = {}
        regions: dict[str, str] = {}
        for row in region_rows(folder):
            if row["registry_code"]:
                region_code[row["region_id"]] = row["registry_code"]
                regions[row["registry_code"]] = row["name"]
        directorates = {
            row["registry_code"]: (
                row["name"],
                DIRECTORATE_TYPES.get(row["level"], REGION_TYPE),
                region_code.get(row["region_id"], MINISTRY_CODE),
            )
            for row in directorate_rows(folder)
        }
        return cls(regions, directorates)


@dataclass(slots=True)
class SeedReport:
    """What a seed run did: reference lists, tree roots and every row of the unit list."""

    reference: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    roots: dict[str, Outcome] = field(default_factory=dict)
    summary: ImportSummary = field(default_factory=ImportSummary)
    from_reference: Counter[str] = field(default_factory=Counter)
    errors: list[RowResult] = field(default_factory=list)
    odd_codes: Counter[str] = field(default_factory=Counter)  # "SEK… created", …
    private: int = 0
    held: int = 0
    unlisted_types: int = 0

    def record(self, result: RowResult) -> None:
        """Take one row's result into the report."""
        if result.outcome is Outcome.ERROR:
            self.errors.append(result)
        code = result.registry_code
        if not (len(code) == 7 and code.isdigit()):  # noqa: PLR2004  (the normal code length)
            accepted = "refused" if result.outcome is Outcome.ERROR else "accepted"
            self.odd_codes[f"{code_shape(code)} {accepted}"] += 1
        if result.outcome is not Outcome.ERROR:
            self.private += any("ΙΔΙΩΤΙΚ" in note for note in result.notes)
            self.held += result.parent_code == HOLDING_NODE_CODE
            self.unlisted_types += any("not in the reference list" in n for n in result.notes)

    def lines(self) -> Iterator[str]:
        """Yield the report as lines for a terminal."""
        for table, (created, updated, unchanged) in self.reference.items():
            yield f"reference {table}: {created} created, {updated} updated, {unchanged} unchanged"
        for code, outcome in self.roots.items():
            yield f"tree root {code}: {outcome.value}"
        counts = self.summary.to_json()
        yield "units: " + ", ".join(f"{count} {name}" for name, count in counts.items())
        if self.from_reference:
            yield "registered from the reference lists (absent from the file): " + ", ".join(
                f"{count} {outcome}" for outcome, count in sorted(self.from_reference.items())
            )
        yield f"private schools (name contains ΙΔΙΩΤΙΚ, marked ΙΔΙΩΤΙΚΟ): {self.private}"
        yield f"under the holding node {HOLDING_NODE_CODE} (no directorate given): {self.held}"
        yield f"unit types kept as written (not in the 36 of the reference): {self.unlisted_types}"
        for shape, count in sorted(self.odd_codes.items()):
            yield f"codes that are not 7 digits, {shape}: {count}"
        for error in self.errors:
            yield f"error line {error.line} {error.registry_code!r}: {error.reason}"


def code_shape(code: str) -> str:
    """Return a short name for the shape of a code that is not 7 digits (for the report)."""
    if code.startswith("SEK"):
        return "SEK…"
    if code.isdigit():
        return f"{len(code)} digits"
    if code.isascii() and code.isalnum() and code.islower():
        return "text code"
    return "other"


async def ensure_roots(
    store: EventStore, clock: Clock, context: AppendContext
) -> dict[str, Outcome]:
    """Register the Ministry root and the holding node if they are not registered yet."""
    roots = (
        RegisterUnit(MINISTRY_CODE, None, MINISTRY_NAME, MINISTRY_TYPE, clock.today()),
        RegisterUnit(
            HOLDING_NODE_CODE,
            MINISTRY_CODE,
            HOLDING_NODE_NAME,
            HOLDING_NODE_TYPE,
            clock.today(),
            is_holding_node=True,
        ),
    )
    outcomes: dict[str, Outcome] = {}
    for command in roots:
        if await handlers.load_unit(store, command.unit_id) is None:
            await handlers.register_unit(command, store=store, clock=clock, context=context)
            outcomes[command.unit_id] = Outcome.CREATED
        else:
            outcomes[command.unit_id] = Outcome.UNCHANGED
    return outcomes


async def seed(
    *,
    engine: AsyncEngine,
    store: EventStore,
    clock: Clock,
    file: Path | None = None,
    limit: int | None = None,
    folder: Path | None = None,
) -> SeedReport:
    """Load the reference lists and the unit list into the units database; return the report."""
    source = folder if folder is not None else data_folder()
    path = file if file is not None else source / SCHOOL_LIST
    context = AppendContext(actor=SEED_ACTOR, correlation_id=uuid4())
    report = SeedReport()
    loaded = await load_reference_data(engine, source)
    report.reference = {t: (c.created, c.updated, c.unchanged) for t, c in loaded.items()}
    report.roots = await ensure_roots(store, clock, context)

    shape = TreeShape.from_reference(source)
    known_types = frozenset(fold(row["name"]) for row in unit_type_rows(source))
    placement = dict.fromkeys(shape.regions, MINISTRY_CODE) | {
        code: parent for code, (_, _, parent) in shape.directorates.items()
    }
    rules = ImportRules(
        known_unit_types=known_types, default_parent=HOLDING_NODE_CODE, placement=placement
    )
    levels = (set(shape.regions), set(shape.directorates))
    seen: set[str] = set()

    async def run(
        rows: Iterator[SourceRow] | AsyncIterator[SourceRow],
        accept: set[str] | None,
        *,
        tally: bool = True,
    ) -> None:
        above = levels[0] | levels[1]
        async for result in import_units(
            rows,
            store=store,
            clock=clock,
            context=context,
            rules=rules,
            summary=report.summary if tally else ImportSummary(),
            accept=(lambda code: code in accept)
            if accept is not None
            else (lambda c: c not in above),
        ):
            seen.add(result.registry_code)
            if tally:
                report.record(result)
            else:
                report.from_reference[result.outcome.value] += 1
                if result.outcome is Outcome.ERROR:
                    report.errors.append(result)

    for level in levels:
        await run(read_csv_rows(path, limit=limit), level)
        missing = sorted(level - seen)
        if missing:
            await run(_reference_rows(shape, missing), set(missing), tally=False)
    await run(read_csv_rows(path, limit=limit), None)
    return report


def _reference_rows(shape: TreeShape, codes: Sequence[str]) -> Iterator[SourceRow]:
    for code in codes:
        if code in shape.regions:
            name, unit_type = shape.regions[code], REGION_TYPE
        else:
            name, unit_type, _ = shape.directorates[code]
        yield 0, {"registry_code": code, "name": name, "unit_type": unit_type}


async def run_seed(
    settings: DatabaseSettings, *, file: Path | None, limit: int | None
) -> SeedReport:
    """Open the database and the event store of `settings`, seed, and close them."""
    clock = SystemClock()
    engine = create_engine(settings.database_url, pool_size=2)
    store = await EventStore.from_settings(settings, source=UNITS_SOURCE, clock=clock, wait=True)
    try:
        return await seed(engine=engine, store=store, clock=clock, file=file, limit=limit)
    finally:
        await store.close()
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI: ``python -m units.seed [--limit N] [--file PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m units.seed", description=__doc__)
    parser.add_argument("--limit", type=int, help="import only the first N rows of the file")
    parser.add_argument("--file", type=Path, help=f"default: services/units/data/{SCHOOL_LIST}")
    parser.add_argument("--database-url", help="default: UNITS_DATABASE_URL")
    args = parser.parse_args(argv)
    settings: DatabaseSettings = SeedSettings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    report = asyncio.run(run_seed(settings, file=args.file, limit=args.limit))
    for line in report.lines():
        print(line)  # noqa: T201  (a CLI's output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
