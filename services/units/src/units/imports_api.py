"""HTTP bulk import of units: ``POST /units/imports`` with a CSV body, answered row by row.

Why this exists: a directorate or the Ministry sends its list of units as a CSV file; the answer
must say what happened to every row (created / unchanged / updated / error with the reason and the
field), and sending the same file again must change nothing. The rules are those of
`units.bulkimport` (stated in its docstring); each row runs through the service's own handlers.

Usage::

    curl -X POST 'http://127.0.0.1:8001/units/imports?default_parent=unplaced' \\
         -H "Authorization: Bearer $TOKEN" -H 'Content-Type: text/csv' \\
         -H 'Accept: application/x-ndjson' --data-binary @units.csv
    # or multipart: -F file=@units.csv

Notes:
- Ministry administrators only: an import may place units anywhere in the tree.
- The body (``text/csv``, or the one file part of a multipart upload) is spooled as it arrives,
  to disk past 1 MiB, then parsed one record at a time: memory stays flat whatever the file size.
- ``Accept: application/x-ndjson`` streams one JSON line per row as it is applied, then a line
  ``{"summary": {...counts}}``; otherwise the answer is one JSON object with the counts and the
  rows that were not plain successes (errors, and rows carrying notes).
- A file that cannot be read as a whole (no header, a required column missing, not UTF-8) is 422
  problem+json (``import-format``); rows applied before a late encoding error stay applied (each
  is complete on its own) and the problem carries their counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from tempfile import SpooledTemporaryFile
from typing import Annotated, Any, BinaryIO, cast
from uuid import uuid4

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import UploadFile

from shared import authz
from shared.auth import Principal, PrincipalDep
from shared.clock import Clock
from shared.events.envelope import Actor
from shared.events.units import GlobalRole
from shared.eventstore import AppendContext, EventStore
from shared.problems import Problem
from units.bulkimport import (
    ImportFormatError,
    ImportRules,
    ImportSummary,
    Outcome,
    RowResult,
    import_units,
    read_csv_stream,
)
from units.reference import known_names, list_unit_types

router = APIRouter(tags=["imports"])

NDJSON = "application/x-ndjson"
CHUNK_SIZE = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024


async def _require_ministry_admin(
    sessions: async_sessionmaker[AsyncSession], who: Principal
) -> None:
    async with sessions() as session:
        roles = await authz.global_roles_of(session, who)
    if GlobalRole.MINISTRY_ADMIN not in roles:
        raise Problem(
            403,
            "forbidden",
            "Not allowed",
            "bulk import of units is for ministry administrators only",
            action="import_units",
        )


async def _unit_types(sessions: async_sessionmaker[AsyncSession]) -> frozenset[str]:
    async with sessions() as session:
        return known_names(await list_unit_types(await session.connection()))


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_SIZE):
        yield chunk


async def _spooled_body(request: Request) -> UploadFile:
    """Return the CSV as an upload spooled to disk past `SPOOL_IN_MEMORY` bytes, read to the end.

    Why spool: a streamed answer (NDJSON) listens for the client's disconnect on the same ASGI
    channel that carries the request body, so the body must be read before the answer starts.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        parts = [value for value in form.values() if isinstance(value, UploadFile)]
        if len(parts) != 1:
            raise Problem(
                422,
                "import-format",
                "The upload is not one CSV file",
                "send exactly one file part (e.g. `file`)",
                field="file",
            )
        await parts[0].seek(0)
        return parts[0]
    spool = SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115  (the caller closes it)
    upload = UploadFile(cast(BinaryIO, spool))  # a SpooledTemporaryFile is a binary file
    async for chunk in request.stream():
        await upload.write(chunk)
    await upload.seek(0)
    return upload


def _format_problem(exc: ImportFormatError, summary: ImportSummary) -> Problem:
    return Problem(
        422,
        "import-format",
        "The file cannot be imported",
        str(exc),
        field="file",
        counts=summary.to_json(),
    )


def _is_noteworthy(result: RowResult) -> bool:
    return result.outcome is Outcome.ERROR or bool(result.notes)


@router.post(
    "/units/imports",
    summary="Import units from a CSV file (UTF-8), row by row",
    responses={200: {"content": {NDJSON: {}}}, 403: {}, 422: {}},
)
async def import_units_from_csv(
    request: Request,
    principal: PrincipalDep,
    default_parent: Annotated[
        str | None,
        Query(description="parent of rows that give neither parent_code nor directorate_code"),
    ] = None,
) -> Any:
    """Import the units of a CSV body; answer every row's outcome and the counts."""
    state = request.app.state
    sessions: async_sessionmaker[AsyncSession] = state.sessions
    store: EventStore = state.store
    clock: Clock = state.clock
    await _require_ministry_admin(sessions, principal)
    rules = ImportRules(known_unit_types=await _unit_types(sessions), default_parent=default_parent)
    context = AppendContext(
        actor=Actor(principal.user_id, GlobalRole.MINISTRY_ADMIN.value),
        correlation_id=uuid4(),
        traceparent=request.headers.get("traceparent"),
    )
    summary = ImportSummary()
    upload = await _spooled_body(request)
    rows = read_csv_stream(_upload_chunks(upload))
    results = import_units(
        rows, store=store, clock=clock, context=context, rules=rules, summary=summary
    )

    if NDJSON in request.headers.get("accept", ""):
        # Read the header before answering, so a file that is wrong as a whole is a 422.
        try:
            first = await anext(results, None)
        except ImportFormatError as exc:
            await upload.close()
            raise _format_problem(exc, summary) from exc

        async def lines() -> AsyncIterator[bytes]:
            try:
                if first is not None:
                    yield _line(first.to_json())
                async for result in results:
                    yield _line(result.to_json())
            except ImportFormatError as exc:
                yield _line({"error": str(exc), "summary": summary.to_json()})
                return
            finally:
                await upload.close()
            yield _line({"summary": summary.to_json()})

        return StreamingResponse(lines(), media_type=NDJSON)

    noteworthy: list[dict[str, Any]] = []
    try:
        noteworthy.extend([r.to_json() async for r in results if _is_noteworthy(r)])
    except ImportFormatError as exc:
        raise _format_problem(exc, summary) from exc
    finally:
        await upload.close()
    return JSONResponse({"counts": summary.to_json(), "rows": noteworthy})


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")
