"""Migrations: every revision goes up and down one step at a time, and the result equals the code.

Why this exists: a downgrade nobody ran is a downgrade that does not work, and a migration written
by hand drifts from the tables the code declares (`shared.schema`, `shared.authz`) and from the SQL
functions it creates (`ictc_append`, `ictc_fold`). The stairway walks every revision (kernel and,
once they exist, each service's); the drift test compares `upgrade heads` with
`create_kernel_tables` + `authz.create_tables` + `fold_function_ddl()` through the catalog.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared import authz
from shared.greek import fold_function_ddl
from shared.migrate import (
    MIGRATION_LOCK_KEY,
    SERVICES,
    downgrade,
    main,
    script_directory,
    service_versions_dir,
    sync_url,
    upgrade,
)
from shared.schema import create_kernel_tables

pytestmark = pytest.mark.infra

DatabaseFactory = Callable[[str], str]
Catalog = dict[str, list[tuple[Any, ...]]]

# What the schema is, read from the catalog; names only (never oids), so two databases compare.
CATALOG_QUERIES = {
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, udt_name,
               character_maximum_length, numeric_precision, datetime_precision, is_nullable,
               column_default, is_identity, is_generated
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> 'alembic_version'
         ORDER BY table_name, ordinal_position
    """,
    "constraints": """
        SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
          FROM pg_constraint AS con JOIN pg_class AS rel ON rel.oid = con.conrelid
         WHERE con.connamespace = 'public'::regnamespace AND rel.relname <> 'alembic_version'
         ORDER BY 1, 2
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef
          FROM pg_indexes
         WHERE schemaname = 'public' AND tablename <> 'alembic_version'
         ORDER BY 1, 2
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
          FROM pg_proc AS p
         WHERE p.pronamespace = 'public'::regnamespace
         ORDER BY 1, 2
    """,
    "sequences": """
        SELECT sequence_name, data_type FROM information_schema.sequences
         WHERE sequence_schema = 'public' ORDER BY 1
    """,
    "seed": "SELECT id, last_position FROM event_positions ORDER BY id",
}


def _libpq(url: str) -> str:
    return sync_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def _catalog(url: str) -> Catalog:
    with psycopg.connect(_libpq(url)) as connection:
        return {
            name: [tuple(row) for row in connection.execute(query).fetchall()]
            for name, query in CATALOG_QUERIES.items()
            if name != "seed" or _has_table(connection, "event_positions")
        }


def _has_table(connection: psycopg.Connection[Any], table: str) -> bool:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()
    return bool(row and row[0])


def _user_objects(url: str) -> list[str]:
    """Return every table, view, sequence and function left in `public` but Alembic's own table."""
    with psycopg.connect(_libpq(url)) as connection:
        rows = connection.execute(
            """
            SELECT relname FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'S', 'm', 'p')
               AND relname <> 'alembic_version'
            UNION ALL
            SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
            """
        ).fetchall()
    return sorted(str(row[0]) for row in rows)


def _versions(service: str | None) -> Path | None:
    return None if service is None else service_versions_dir(service)


@pytest.mark.parametrize("service", [None, *sorted(SERVICES)], ids=lambda s: s or "kernel")
def test_every_revision_upgrades_and_downgrades_one_step_at_a_time(
    fresh_database: DatabaseFactory, service: str | None
) -> None:
    url = fresh_database(f"stairway_{service or 'kernel'}")
    versions = _versions(service)
    revisions = list(reversed(list(script_directory(versions).walk_revisions())))
    assert revisions, "no revisions found"
    for revision in revisions:
        upgrade(url, versions, revision.revision)
        after_up = _catalog(url)
        downgrade(url, versions, f"{revision.revision}-1")
        upgrade(url, versions, revision.revision)
        assert _catalog(url) == after_up, f"{revision.revision}: down then up changed the schema"
    upgrade(url, versions, "heads")
    downgrade(url, versions, "base")
    assert _user_objects(url) == [], "downgrade to base left objects behind"


async def _create_from_code(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await create_kernel_tables(connection)
            await authz.create_tables(connection)
            await connection.execute(text(fold_function_ddl()))
    finally:
        await engine.dispose()


def test_migrated_schema_equals_the_schema_the_code_declares(
    fresh_database: DatabaseFactory,
) -> None:
    migrated = fresh_database("drift_migrated")
    declared = fresh_database("drift_declared")
    upgrade(migrated)
    asyncio.run(_create_from_code(declared))

    got, want = _catalog(migrated), _catalog(declared)

    assert {row[0] for row in want["functions"]} >= {"ictc_append", "ictc_fold"}

    for part in CATALOG_QUERIES:
        assert got[part] == want[part], f"{part} differ: migrations and shared.schema/authz drifted"


def test_cli_upgrades_reports_and_downgrades_a_service_database(
    fresh_database: DatabaseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_database("migrate_cli")

    assert main(["units", "upgrade", "--database-url", url]) == 0
    assert main(["units", "current", "--database-url", url]) == 0
    assert main(["units", "heads"]) == 0
    output = capsys.readouterr().out
    heads = set(script_directory(service_versions_dir("units")).get_heads())
    assert all(head in output for head in heads)
    assert "events" in _user_objects(url)

    assert main(["units", "downgrade", "base", "--database-url", url]) == 0
    assert _user_objects(url) == []


def _lock_waiters(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        """
        SELECT count(*) FROM pg_locks
         WHERE locktype = 'advisory' AND NOT granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """
    ).fetchone()
    return int(row[0]) if row else 0


def test_workers_starting_together_migrate_one_after_the_other(
    fresh_database: DatabaseFactory,
) -> None:
    url = fresh_database("migrate_concurrently")
    command = [sys.executable, "-m", "shared.migrate", "units", "upgrade", "--database-url", url]

    with psycopg.connect(_libpq(url), autocommit=True) as holder:
        # Hold the migration lock: every worker must queue behind it rather than migrate at once.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        # Processes, not threads: Alembic's `context` is process-global, and replicas are processes.
        workers = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        deadline = time.monotonic() + 60
        while _lock_waiters(holder) < len(workers):
            assert all(worker.poll() is None for worker in workers), "a worker did not wait"
            assert time.monotonic() < deadline, "the workers never queued on the migration lock"
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    outcomes = [(worker.communicate(timeout=120)[1], worker.returncode) for worker in workers]

    for stderr, status in outcomes:
        assert status == 0, stderr
    with psycopg.connect(_libpq(url)) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    heads = set(script_directory(service_versions_dir("units")).get_heads())
    assert {row[0] for row in versions} == heads
