"""Bulk import of a slice of the real national list: every row imported or reported, placed in
the tree, idempotent on a re-run, and a corrupted row refused whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.eventstore import AppendContext
from tests.conftest import DatabaseFactory
from tests.integration.units.import_kit import UnitsDatabase, units_database, write_slice
from units import handlers
from units.bulkimport import ImportRules, Outcome, RowResult, import_units, read_csv_rows
from units.seed import HOLDING_NODE_CODE, MINISTRY_CODE, SEED_ACTOR, seed

pytestmark = pytest.mark.infra

CONTEXT = AppendContext(actor=SEED_ACTOR)


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(
    fresh_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[UnitsDatabase, Path, dict[str, list[dict[str, str]]]]]:
    path = tmp_path_factory.mktemp("slice") / "slice.csv"
    picked = write_slice(path)
    async with units_database(fresh_database("units_import_slice")) as db:
        yield db, path, picked


async def test_slice_is_placed_in_the_tree_every_row_reported_and_rerun_unchanged(
    seeded: tuple[UnitsDatabase, Path, dict[str, list[dict[str, str]]]],
) -> None:
    db, path, picked = seeded
    rows = sum(len(kind) for kind in picked.values())
    assert rows >= 300

    first = await seed(engine=db.engine, store=db.store, clock=db.clock, file=path)
    position = await db.store.last_position()
    again = await seed(engine=db.engine, store=db.store, clock=db.clock, file=path)

    # Every row of the file has exactly one outcome; the refused ones say why.
    counts = first.summary.to_json()
    assert counts["rows"] == rows
    refused = {e.registry_code: e for e in first.errors}
    # The slice's only code outside the stated shapes, and a school abroad whose postal code
    # has 4 digits (the row is refused whole rather than imported without it).
    assert {code: error.field for code, error in refused.items()} == {
        "IDG0019": "registry_code",
        "00724171": "postal_code",
    }
    assert "unknown prefix 'IDG'" in (refused["IDG0019"].reason or "")
    assert refused["00724171"].reason == "postal_code: '2224' is not 5 digits"
    assert counts["error"] == 2
    assert counts["created"] + counts["updated"] + counts["unchanged"] == rows - 2

    # A re-run appends nothing and reports every imported row unchanged.
    assert await db.store.last_position() == position
    assert again.summary.to_json() == {
        "created": 0,
        "unchanged": rows - 2,
        "updated": 0,
        "error": 2,
        "rows": rows,
    }
    assert set(again.roots.values()) == {Outcome.UNCHANGED}
    assert all(created == updated == 0 for created, updated, _ in again.reference.values())

    # The tree: school → its directorate → its region → the Ministry; primary → holding node.
    gymnasium = picked["ΓΥΜΝΑΣΙΟ"][0]
    unit = await handlers.load_unit(db.store, gymnasium["registry_code"])
    assert unit is not None
    assert unit.name == gymnasium["name"]
    assert unit.parent_id == gymnasium["directorate_code"]
    assert unit.mm_id == (gymnasium["mm_id"] or None)
    assert unit.postal_code == (gymnasium["postal_code"] or None)
    directorate = await handlers.load_unit(db.store, gymnasium["directorate_code"])
    assert directorate is not None
    assert directorate.parent_id is not None
    region = await handlers.load_unit(db.store, directorate.parent_id)
    assert region is not None
    assert region.parent_id == MINISTRY_CODE

    kindergarten = await handlers.load_unit(db.store, picked["ΝΗΠΙΑΓΩΓΕΙΟ"][0]["registry_code"])
    assert kindergarten is not None
    assert kindergarten.parent_id == HOLDING_NODE_CODE
    holding = await handlers.load_unit(db.store, HOLDING_NODE_CODE)
    assert holding is not None
    assert holding.is_holding_node
    assert holding.locations == ()
    assert first.held >= 60 + 30 + 20

    for row in picked["SEK"][:3] + picked["8 digits"][1:]:
        accepted = await handlers.load_unit(db.store, row["registry_code"])
        assert accepted is not None, row["registry_code"]
    private = await handlers.load_unit(db.store, picked["private"][0]["registry_code"])
    assert private is not None
    assert private.legal_character == "ΙΔΙΩΤΙΚΟ"
    assert first.private >= 30
    assert first.odd_codes["SEK… accepted"] == 20
    assert first.odd_codes["other refused"] == 1


CORRUPTED = """registry_code,name,unit_type,parent_code,postal_code
0551198,1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ,ΓΕΝΙΚΟ ΛΥΚΕΙΟ,{parent},10431
05511X8,ΓΥΜΝΑΣΙΟ ΜΕ ΚΑΚΟ ΚΩΔΙΚΟ,ΓΥΜΝΑΣΙΟ,{parent},
0551199,,ΓΥΜΝΑΣΙΟ,{parent},
0551200,2ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ,ΓΥΜΝΑΣΙΟ,0999999,
0551198,1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ (ΔΙΠΛΟ),ΓΕΝΙΚΟ ΛΥΚΕΙΟ,{parent},
"""
CHANGED = """registry_code,name,unit_type,parent_code,postal_code,address
0551198,1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ,ΓΕΝΙΚΟ ΛΥΚΕΙΟ,{parent},1043,ΣΟΛΩΝΟΣ 1
0551198,1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ,ΓΕΝΙΚΟ ΛΥΚΕΙΟ,{parent},10432,ΣΟΛΩΝΟΣ 1
"""
FIXED = """registry_code,name,unit_type,parent_code,postal_code,address
0551198,1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ,ΓΕΝΙΚΟ ΛΥΚΕΙΟ,{parent},10432,ΣΟΛΩΝΟΣ 1
"""


async def _import(db: UnitsDatabase, path: Path) -> list[RowResult]:
    results = import_units(
        read_csv_rows(path), store=db.store, clock=db.clock, context=CONTEXT, rules=ImportRules()
    )
    return [result async for result in results]


async def test_corrupted_rows_are_reported_with_their_reason_and_nothing_is_half_applied(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    async with units_database(fresh_database("units_import_corrupted")) as db:
        report = await seed(engine=db.engine, store=db.store, clock=db.clock, limit=0)
        assert report.summary.rows == 0
        parent = "0500105"  # ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΑΘΗΝΑΣ Α΄, registered from the reference lists
        path = tmp_path / "corrupted.csv"
        path.write_text(CORRUPTED.format(parent=parent), encoding="utf-8")

        results = await _import(db, path)

        by_line = {r.line: r for r in results}
        assert [r.outcome for r in results] == [
            Outcome.CREATED,
            Outcome.ERROR,
            Outcome.ERROR,
            Outcome.ERROR,
            Outcome.ERROR,
        ]
        assert by_line[3].field == "registry_code"
        assert by_line[4].reason == "name: is required"
        assert "ParentNotFoundError" in (by_line[5].reason or "")
        assert "duplicate of line 2" in (by_line[6].reason or "")
        for code in ("05511X8", "0551199", "0551200"):
            assert await db.store.load(code) == [], code

        # An update whose one bad cell refuses the row leaves the unit exactly as it was.
        before = await handlers.load_unit(db.store, "0551198")
        path.write_text(CHANGED.format(parent=parent), encoding="utf-8")
        first, second = await _import(db, path)
        assert first.outcome is Outcome.ERROR
        assert first.field == "postal_code"
        assert second.outcome is Outcome.ERROR  # the same code twice in one file
        assert await handlers.load_unit(db.store, "0551198") == before

        path.write_text(FIXED.format(parent=parent), encoding="utf-8")
        (updated,) = await _import(db, path)
        assert updated.outcome is Outcome.UPDATED
        after = await handlers.load_unit(db.store, "0551198")
        assert after is not None
        assert (after.postal_code, after.address) == ("10432", "ΣΟΛΩΝΟΣ 1")
        assert (await _import(db, path))[0].outcome is Outcome.UNCHANGED
