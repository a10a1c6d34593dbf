"""Reference lists: loaded from services/units/data into the units database, idempotently."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import create_engine
from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory
from units.reference import (
    LoadCount,
    data_folder,
    list_directorates,
    list_municipalities,
    list_regions,
    list_unit_types,
    load_reference_data,
    read_csv,
)

pytestmark = pytest.mark.infra


def test_every_region_code_is_a_regional_directorate_of_the_real_list() -> None:
    folder = data_folder()
    pairs = list(read_csv(folder / "gr_region_registry_codes.csv"))
    wanted = {row["registry_code"]: row["name_in_school_list"] for row in pairs}
    found = {
        row["registry_code"]: row["name"]
        for row in read_csv(folder / "gr_school_units.csv")
        if row["registry_code"] in wanted
    }
    assert found == wanted
    regions = {row["region_edu_admin_id"] for row in read_csv(folder / "gr_region_edu_admins.csv")}
    assert {row["region_edu_admin_id"] for row in pairs} == regions


async def test_reference_lists_load_once_and_a_rerun_changes_nothing(
    fresh_database: DatabaseFactory,
) -> None:
    url = fresh_database("units_reference")
    upgrade(url, service_versions_dir("units"))
    engine = create_engine(url)
    try:
        first = await load_reference_data(engine)
        second = await load_reference_data(engine)
        async with engine.connect() as connection:
            regions = await list_regions(connection)
            directorates = await list_directorates(connection)
            types = await list_unit_types(connection)
            municipalities = await list_municipalities(connection)
            grouped = await connection.execute(
                text("SELECT level, count(*) FROM ref_directorates GROUP BY level")
            )
            levels = {str(level): int(count) for level, count in grouped.all()}
    finally:
        await engine.dispose()

    assert first == {
        "ref_regions": LoadCount(14, 0, 0),
        "ref_directorates": LoadCount(119, 0, 0),
        "ref_unit_types": LoadCount(36, 0, 0),
        "ref_prefectures": LoadCount(74, 0, 0),
        "ref_municipalities": LoadCount(324, 0, 0),
    }
    assert all(
        count == LoadCount(0, 0, c.created)
        for count, c in zip(second.values(), first.values(), strict=True)
    )
    assert levels == {"primary": 58, "secondary": 58, "other": 3}
    attica = next(r for r in regions if r.registry_code == "9999901")
    assert attica.name == "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΑΤΤΙΚΗΣ"
    assert attica.display_name != attica.name  # a display form for people, stored name untouched
    thessaloniki = next(d for d in directorates if d.registry_code == "1900105")
    assert thessaloniki.name == "ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΘΕΣΣΑΛΟΝΙΚΗΣ Α΄"
    assert thessaloniki.parent_id == 9
    assert len(types) == 36
    assert "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΓΥΜΝΑΣΙΟ " in {t.name for t in types}  # stored as given
    assert len(municipalities) == 324
