"""Multi-row writes as one statement of fixed text: `INSERT ... SELECT FROM unnest(arrays)`.

Why this exists: a batch's rows go as one array per column, so the statement's text never depends
on the number of rows (compiled once by SQLAlchemy, parsed once by psycopg and the server), and it
is a Core construct, so a rebuild's schema translation applies to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import CursorResult, Table, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

# SQLAlchemy never caches the compiled form of PostgreSQL's INSERT (ON CONFLICT), so compiling
# it cost about a millisecond per execution: each statement is compiled once per schema here.
_compiled: dict[tuple[int, tuple[tuple[Any, Any], ...]], str] = {}


def insert_rows(table: Table, names: Sequence[str]) -> Insert:
    """Return `INSERT INTO table (names) SELECT * FROM unnest(:name, ...)`, one array per name."""
    source = (
        func.unnest(*(bindparam(name, type_=ARRAY(table.c[name].type)) for name in names))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived("batch_rows")
    )
    return insert(table).from_select(list(names), select(*(source.c[name] for name in names)))


def columns_of(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Return the rows as one list per column, the parameters of `insert_rows`."""
    return {name: [row[name] for row in rows] for name in names}


async def execute_rows(
    session: AsyncSession, statement: UpdateBase, columns: dict[str, list[Any]]
) -> CursorResult[Any]:
    """Execute an `insert_rows` statement (compiled once, in the session's schema) on `columns`."""
    connection = await session.connection()
    options = (
        connection.sync_connection.get_execution_options() if connection.sync_connection else {}
    )
    translate = options.get("schema_translate_map") or {}
    key = (id(statement), tuple(sorted(translate.items(), key=repr)))
    sql = _compiled.get(key)
    if sql is None:
        compiled = statement.compile(
            dialect=connection.dialect,
            schema_translate_map=translate or None,
            render_schema_translate=bool(translate),
        )
        sql = _compiled[key] = str(compiled)
    return await connection.exec_driver_sql(sql, columns)


__all__ = ["columns_of", "execute_rows", "insert_rows"]
