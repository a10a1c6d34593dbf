"""HTTP API of certification, the as-of inventory and bulk import (included by `main.create_app`).

Why this exists: these endpoints read the event store itself (certification binds to the write
side, as-of folds history) or stream files, unlike the read-model queries of `equipment.api`.

Endpoints and who may call them (`shared.authz`):
- ``POST /units/{unit_id}/certifications`` (certify; `Idempotency-Key`): certify the inventory
  now; 201 with the header, or 409 ``certification-refused`` listing every reason.
- ``GET /units/{unit_id}/certifications`` and ``GET /units/{unit_id}/certification-status``
  (read): the unit's certifications; the latest and whether the inventory changed since.
- ``GET /certifications/{id}``, ``…/{id}/export.json``, ``…/{id}/pdf`` (read on its unit): the
  header, the canonical JSON export (recompute its hash with ``python -m equipment.certexport
  verify``) and the PDF, exactly as stored when it was certified.
- ``GET /units/{unit_id}/inventory/as-of?at=…`` or ``?on=YYYY-MM-DD`` (read): the inventory as it
  was at an instant (a time without offset is Athens time) or at the end of an Athens day.
- ``POST /units/{unit_id}/equipment-imports`` (entry): a CSV or XLSX file (raw body with its
  content type, or one multipart file part); per-row results as NDJSON (``Accept:
  application/x-ndjson``) or JSON; ``GET /equipment-imports/{import_id}`` (read) reads it back.
"""

# ruff: noqa: PLR0917  (FastAPI endpoints receive their dependencies as parameters)

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated, Any, cast
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from equipment import asof, certification, importer, views
from equipment.certexport import CertificationHeader
from equipment.certification import (
    CertificationRefusedError,
    Certified,
    CertifyInventory,
    certify_inventory,
    certify_with_retries,
)
from shared import authz
from shared.auth import PrincipalDep
from shared.authz import Action
from shared.clock import ATHENS, athens_midnight
from shared.events.envelope import Actor
from shared.events.units import UnitRole
from shared.eventstore import AppendContext, StoreTransaction
from shared.idempotency import IdempotencyKeyDep, run_idempotent
from shared.problems import Problem
from shared.telemetry import current_traceparent
from shared.web import ClockDep, SessionDep, StoreDep

router = APIRouter(tags=["certification"])

NDJSON = "application/x-ndjson"
SPOOL_IN_MEMORY = 1024 * 1024
CHUNK_SIZE = 64 * 1024


class CertifyInventoryRequest(BaseModel):
    """Certify the unit's inventory as it is now; the signer is the caller."""

    signer_name: str | None = Field(default=None, max_length=200)


def _header_json(header: CertificationHeader) -> dict[str, Any]:
    return header.to_json()


async def _unit_details(session: SessionDep, unit_id: str) -> dict[str, Any]:
    row = await views.get_unit(session, unit_id)
    if row is None:
        raise Problem(404, "unit-not-found", "No such unit", f"unit {unit_id} is not registered")
    return {"unit_id": unit_id, "name": row["name"]}


@router.post("/units/{unit_id}/certifications", status_code=201)
async def certify(
    unit_id: str,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    body: CertifyInventoryRequest | None = None,
) -> Response:
    """Certify the unit's inventory (οριστικοποίηση) as it is now."""
    details = await _unit_details(session, unit_id)
    await authz.require(session, principal, Action.CERTIFY, unit_id)
    command = CertifyInventory(
        unit_id=unit_id,
        certification_id=uuid4(),
        signer_id=principal.user_id,
        signer_name=body.signer_name if body else None,
    )
    context = AppendContext(
        actor=Actor(principal.user_id, UnitRole.CERTIFY.value),
        traceparent=current_traceparent(),
        unit_id=unit_id,
    )

    async def run(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        try:
            done: Certified = await certify_inventory(
                command, tx=tx, clock=clock, context=context, unit=details
            )
        except CertificationRefusedError as refused:
            raise Problem(
                409,
                "certification-refused",
                "The inventory cannot be certified now",
                str(refused),
                unit_id=unit_id,
                reasons=refused.reasons,
            ) from refused
        return 201, {
            **_header_json(done.header),
            "stream_id": f"inventory:{unit_id}",
            "version": done.version,
            "position": done.position,
        }

    return await certify_with_retries(lambda: run_idempotent(store, key, run))


@router.get("/units/{unit_id}/certifications")
async def list_certifications(
    unit_id: str, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Return the unit's certifications, latest first."""
    await authz.require(session, principal, Action.READ, unit_id)
    async with store.pool.connection() as connection:
        headers = await certification.list_certifications(connection, unit_id)
    return [_header_json(h) for h in headers]


@router.get("/units/{unit_id}/certification-status")
async def certification_status(
    unit_id: str, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> dict[str, Any]:
    """Return the unit's latest certification and whether its inventory changed since."""
    await authz.require(session, principal, Action.READ, unit_id)
    async with store.pool.connection() as connection:
        status = await certification.certification_status(connection, unit_id)
    if status is None:
        return {"unit_id": unit_id, "latest": None, "changed_since_certification": None}
    return {
        "unit_id": unit_id,
        "latest": _header_json(status.header),
        "changed_since_certification": status.is_changed_since,
        "current_content_hash": status.current_hash,
        "current_item_count": status.current_item_count,
    }


async def _certification(
    store: StoreDep, session: SessionDep, principal: PrincipalDep, certification_id: UUID
) -> CertificationHeader:
    async with store.pool.connection() as connection:
        header = await certification.get_certification(connection, certification_id)
    if header is None:
        raise Problem(
            404, "certification-not-found", "No such certification", str(certification_id)
        )
    await authz.require(session, principal, Action.READ, header.unit_id)
    return header


@router.get("/certifications/{certification_id}")
async def get_certification(
    certification_id: UUID, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> dict[str, Any]:
    """Return one certification's header."""
    return _header_json(await _certification(store, session, principal, certification_id))


@router.get("/certifications/{certification_id}/export.json")
async def certification_export(
    certification_id: UUID, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> Response:
    """Return the certification's JSON export exactly as stored."""
    await _certification(store, session, principal, certification_id)
    async with store.pool.connection() as connection:
        text = await certification.certification_document(connection, certification_id, "export")
    return Response(
        str(text),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="certification-{certification_id}.json"'
        },
    )


@router.get("/certifications/{certification_id}/pdf")
async def certification_pdf(
    certification_id: UUID, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> Response:
    """Return the certification's PDF exactly as stored."""
    await _certification(store, session, principal, certification_id)
    async with store.pool.connection() as connection:
        pdf = await certification.certification_document(connection, certification_id, "pdf")
    return Response(
        bytes(cast(bytes, pdf)),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="certification-{certification_id}.pdf"'
        },
    )


def as_of_instant(at: datetime | None, on: date | None) -> datetime | None:
    """Return the instant asked for: `at` (Athens time if it has no offset) or the end of `on`."""
    if at is not None and on is not None:
        raise Problem(
            422, "validation-failed", "Give `at` or `on`, not both", field="at",
            errors=[{"field": "on", "in": "query", "reason": "give `at` or `on`, not both"}],
        )  # fmt: skip
    if at is not None:
        return at if at.tzinfo is not None else at.replace(tzinfo=ATHENS)
    if on is not None:
        return athens_midnight(on + timedelta(days=1)) - timedelta(microseconds=1)
    return None


@router.get("/units/{unit_id}/inventory/as-of")
async def inventory_as_of(
    unit_id: str,
    principal: PrincipalDep,
    store: StoreDep,
    session: SessionDep,
    at: Annotated[datetime | None, Query(description="instant; without offset: Athens")] = None,
    on: Annotated[date | None, Query(description="the end of this Athens calendar day")] = None,
) -> dict[str, Any]:
    """Return the unit's inventory as it was at an instant, folded from the event store."""
    await authz.require(session, principal, Action.READ, unit_id)
    instant = as_of_instant(at, on)
    async with store.pool.connection() as connection:
        inventory = await asof.inventory_as_of(connection, unit_id, at=instant)
    return {
        "unit_id": unit_id,
        "at": instant.isoformat() if instant else None,
        "position": inventory.position,
        "item_count": len(inventory.items),
        "items": inventory.items,
        "in_transit": inventory.in_transit,
        "last_certification": inventory.last_certification,
    }


# ---------------------------------------------------------------------------------------------
# Bulk import


async def _spooled_upload(request: Request) -> tuple[IO[bytes], str | None, str | None]:
    """Return the uploaded file spooled (to disk past 1 MiB), its name and its content type."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        parts = [value for value in form.values() if isinstance(value, UploadFile)]
        if len(parts) != 1:
            raise Problem(
                422, "import-format", "The upload is not one file",
                "send exactly one file part (e.g. `file`)", field="file",
            )  # fmt: skip
        await parts[0].seek(0)
        return cast(IO[bytes], parts[0].file), parts[0].filename, parts[0].content_type
    spool = SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115  (the caller closes it)
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    return cast(IO[bytes], spool), request.headers.get("x-file-name"), content_type


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, default=str) + "\n").encode("utf-8")


@router.post(
    "/units/{unit_id}/equipment-imports",
    summary="Import a unit's equipment from a CSV or XLSX file, row by row",
    responses={200: {"content": {NDJSON: {}}}, 403: {}, 422: {}},
)
async def import_equipment(
    unit_id: str,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
) -> Any:
    """Import the file's rows into the unit's inventory; answer every row's outcome."""
    await _unit_details(session, unit_id)
    await authz.require(session, principal, Action.RECORD_EQUIPMENT, unit_id)
    handle, name, content_type = await _spooled_upload(request)
    import_id = uuid4()
    summary = importer.ImportSummary()
    results = importer.import_file(
        handle,
        importer.file_kind(name, content_type),
        unit_id=unit_id,
        file_name=name,
        import_id=import_id,
        actor=Actor(principal.user_id, UnitRole.ENTRY.value),
        store=store,
        clock=clock,
        session=session,
        summary=summary,
        traceparent=current_traceparent(),
    )

    def problem(exc: importer.ImportFormatError) -> Problem:
        return Problem(
            422, "import-format", "The file cannot be imported", str(exc), field="file",
            import_id=str(import_id), counts=summary.to_json(),
        )  # fmt: skip

    if NDJSON in request.headers.get("accept", ""):
        try:
            first = await anext(results, None)
        except importer.ImportFormatError as exc:
            handle.close()
            raise problem(exc) from exc

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield _line({"import_id": str(import_id)})
                if first is not None:
                    yield _line(first.to_json())
                async for result in results:
                    yield _line(result.to_json())
            except importer.ImportFormatError as exc:
                yield _line({"error": str(exc), "summary": summary.to_json()})
                return
            finally:
                handle.close()
            yield _line({"summary": summary.to_json()})

        return StreamingResponse(lines(), media_type=NDJSON)

    noteworthy: list[dict[str, Any]] = []
    try:
        noteworthy.extend(
            [
                result.to_json()
                async for result in results
                if result.outcome is importer.Outcome.ERROR or result.notes
            ]
        )
    except importer.ImportFormatError as exc:
        raise problem(exc) from exc
    finally:
        handle.close()
    return JSONResponse(
        {
            "import_id": str(import_id),
            **summary.to_json(),
            "ignored_columns": summary.ignored_columns,
            "rows": noteworthy,
        }
    )


@router.get("/equipment-imports/{import_id}")
async def get_import(
    import_id: UUID, principal: PrincipalDep, store: StoreDep, session: SessionDep
) -> Any:
    """Return an import's record, its counts and its rows that were not plain successes."""
    record = await importer.get_import(store, import_id)
    if record is None:
        raise Problem(404, "import-not-found", "No such import", str(import_id))
    await authz.require(session, principal, Action.READ, record["unit_id"])
    return JSONResponse(json.loads(json.dumps(record, default=str)))
