"""The data port's routes: contract version 1 (the push and the reconciliation reads).

Why this exists: this is the surface registry-sync talks to, exactly as
services/registry-sync/contract/registry-v1.openapi.yaml describes it; nothing else is served here.

Notes: the push's body is parsed by `TablePush.model_validate_json` rather than by FastAPI, so
strict JSON validation applies and every refusal names its field in one 422 problem, the header's
included.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from registry_receiver import domain
from registry_receiver.problems import field_errors, problem_response, validation_response
from registry_receiver.schemas import MAX_LISTING_LIMIT, HeldBody, Listing, PushAnswer, TablePush
from registry_receiver.store import Store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")
DEFAULT_LISTING_LIMIT = 1000


def get_store(request: Request) -> Store:
    """Return the store the composition root put on the app."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def _json(model: HeldBody | Listing | PushAnswer) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


@router.put("/bodies/{body_code}/table")
async def put_table(body_code: str, request: Request, store: StoreDep) -> Response:
    """Receive a body's whole table; answer applied, stale_version or duplicate_key, or 422."""
    header_key = request.headers.get("idempotency-key")
    try:
        push = TablePush.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = field_errors(exc)
        if header_key is None:
            errors.append(domain.FieldError("Idempotency-Key", "the header is required", "header"))
        log.info("push refused body=%s errors=%d", body_code, len(errors))
        return validation_response(errors, request.url.path)
    refusals = domain.check_push(push, path_code=body_code, header_key=header_key)
    if refusals:
        log.info("push refused body=%s fields=%s", body_code, ",".join(e.field for e in refusals))
        return validation_response(refusals, request.url.path)
    answer = store.push(push)
    log.info(
        "push body=%s version=%d outcome=%s held=%d",
        push.body_code,
        push.registry_version,
        answer.outcome.value,
        answer.held_version,
    )
    return _json(answer)


@router.get("/bodies/{body_code}")
async def get_body(body_code: str, request: Request, store: StoreDep) -> Response:
    """Return the table held for a body, or 404 if none was ever applied."""
    held = store.body(body_code)
    if held is None:
        return problem_response(
            404,
            "body-not-found",
            "No table is held for this body",
            f"No push was ever applied for body {body_code}.",
            instance=request.url.path,
        )
    return _json(held)


@router.get("/bodies")
async def list_bodies(
    store: StoreDep,
    after: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTING_LIMIT)] = DEFAULT_LISTING_LIMIT,
) -> Response:
    """Return one page of held bodies by code, each with the hash recomputed from its rows."""
    items, next_after = store.listing(after=after, limit=limit)
    return _json(Listing(items=items, next_after=next_after))
