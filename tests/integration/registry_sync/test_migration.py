"""The registry-sync migration creates exactly the tables `registry_sync.views` declares.

Why this exists: a rebuild creates the projection's tables from the code (`metadata.create_all`
in a shadow schema) and swaps them in for the migrated ones, and the ledger's tables are declared
beside them; if code and migration drifted, the swapped-in tables would differ from what the next
migration expects.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from registry_sync import views
from shared.migrate import service_versions_dir, upgrade
from tests.conftest import DatabaseFactory
from tests.integration.migrations.test_stairway import _catalog

pytestmark = pytest.mark.infra


async def _create_from_code(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(views.metadata.create_all)
            await connection.run_sync(views.ledger_metadata.create_all)
    finally:
        await engine.dispose()


def _registry_only(
    catalog: dict[str, list[tuple[object, ...]]],
) -> dict[str, list[tuple[object, ...]]]:
    return {
        part: [row for row in rows if str(row[0]).startswith("rs_")]
        for part, rows in catalog.items()
        if part in ("columns", "constraints", "indexes")
    }


def test_migrated_registry_sync_tables_equal_the_declared_ones(
    fresh_database: DatabaseFactory,
) -> None:
    migrated = fresh_database("rs_drift_migrated")
    declared = fresh_database("rs_drift_declared")
    upgrade(migrated, service_versions_dir("registry_sync"))
    upgrade(declared)
    asyncio.run(_create_from_code(declared))

    got, want = _registry_only(_catalog(migrated)), _registry_only(_catalog(declared))

    assert want["columns"]
    for part, rows in want.items():
        assert got[part] == rows, f"{part} differ: migration and views drifted"
