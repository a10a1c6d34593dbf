"""Bulk import of a unit's equipment from CSV or XLSX: one import, recorded with every row's result.

Why this exists: see `equipment.importer.rows` (the file's stated rules, reading and validation)
and `equipment.importer.apply` (resolution and batched application). This module runs one import
from end to end: it records the import (`equipment_imports`: file name, kind, SHA-256, who, when,
status and counts), streams the rows through validation and application, and closes the record
with `completed`, `partial` (some rows failed) or `failed`.

Usage::

    async for result in import_file(handle, "xlsx", unit_id="0551040", file_name="lab.xlsx",
                                    import_id=uuid4(), actor=Actor(user, "entry"), store=store,
                                    clock=clock, session=session):
        ...

Notes: every event an import appends has the import id as its correlation id, and each
`ItemRegistered` carries it as `import_id`, so an item's history shows the import; the per-row
results are written in the same transaction as the rows' events.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import IO, Any
from uuid import UUID

from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession

from equipment import views
from equipment.importer.apply import BATCH_SIZE, BatchImporter, Resolver
from equipment.importer.rows import (
    FileKind,
    ImportFormatError,
    ImportSummary,
    Outcome,
    RowResult,
    file_kind,
    read_rows,
    validated,
)
from shared.clock import Clock
from shared.events.envelope import Actor
from shared.eventstore import AppendContext, EventStore

__all__ = [
    "ImportFormatError",
    "ImportSummary",
    "Outcome",
    "RowResult",
    "file_kind",
    "get_import",
    "import_file",
]

_START = (
    "INSERT INTO equipment_imports (import_id, unit_id, file_name, file_kind, file_sha256,"
    " actor_id, started_at, status, counts) VALUES (%s, %s, %s, %s, %s, %s, %s, 'running', %s)"
)
_FINISH = (
    "UPDATE equipment_imports SET finished_at = %s, status = %s, counts = %s WHERE import_id = %s"
)


def file_digest(handle: IO[bytes]) -> str:
    """Return the SHA-256 of a file (read through, then rewound)."""
    digest = hashlib.sha256()
    while chunk := handle.read(1 << 16):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


async def import_file(
    handle: IO[bytes],
    kind: FileKind,
    *,
    unit_id: str,
    file_name: str | None,
    import_id: UUID,
    actor: Actor,
    store: EventStore,
    clock: Clock,
    session: AsyncSession,
    summary: ImportSummary | None = None,
    batch_size: int = BATCH_SIZE,
    traceparent: str | None = None,
) -> AsyncIterator[RowResult]:
    """Import a file into `unit_id`'s inventory; yield each row's result in file order."""
    tally = summary if summary is not None else ImportSummary()
    digest = file_digest(handle)
    async with store.pool.connection() as connection:
        await connection.execute(
            _START,
            (import_id, unit_id, file_name, kind, digest, actor.user_id, clock.now(),
             Jsonb(tally.to_json())),
        )  # fmt: skip
    directory = views.UnitDirectory(session)
    importer = BatchImporter(
        store=store,
        clock=clock,
        context=AppendContext(
            actor=actor, correlation_id=import_id, unit_id=unit_id, traceparent=traceparent
        ),
        unit=await directory.known_unit(unit_id),
        resolver=await Resolver.load(unit_id, session),
        import_id=import_id,
        directory=directory,
        summary=tally,
    )
    status = "failed"
    try:
        rows = validated(read_rows(handle, kind, tally), unit_id)
        async for result in importer.run(rows, batch_size):
            yield result
        status = tally.status
    finally:
        async with store.pool.connection() as connection:
            await connection.execute(
                _FINISH, (clock.now(), status, Jsonb(tally.to_json()), import_id)
            )


async def get_import(store: EventStore, import_id: UUID) -> dict[str, Any] | None:
    """Return an import's record with the rows that were not plain successes, or None."""
    async with store.pool.connection() as connection:
        cursor = connection.cursor(row_factory=namedtuple_row)
        await cursor.execute("SELECT * FROM equipment_imports WHERE import_id = %s", (import_id,))
        record: Any = await cursor.fetchone()
        if record is None:
            return None
        await cursor.execute(
            "SELECT line, outcome, item_id, reason, field, notes FROM equipment_import_rows"
            " WHERE import_id = %s AND (outcome = 'error' OR notes IS NOT NULL) ORDER BY line",
            (import_id,),
        )
        rows: list[Any] = await cursor.fetchall()
    return {
        "import_id": str(record.import_id),
        "unit_id": record.unit_id,
        "file_name": record.file_name,
        "file_kind": record.file_kind,
        "file_sha256": record.file_sha256,
        "actor_id": record.actor_id,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "status": record.status,
        "counts": record.counts,
        "rows": [
            RowResult(
                r.line,
                Outcome(r.outcome),
                item_id=r.item_id,
                reason=r.reason,
                field=r.field,
                notes=tuple(r.notes or ()),
            ).to_json()
            for r in rows
        ],
    }
