"""RFC 9457 problem+json answers of the receiver, without the project's `shared` kernel.

Why this exists: the receiver plays a remote system, so it must not import the services' code; it
answers errors in the same shape (``type``, ``title``, ``status``, ``detail``, ``errors``
naming each field and reason) so the sender parses one format.

Usage::

    return validation_response([FieldError("rows.0.quantity", "must be >= 1")], request.url.path)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry_receiver.domain import FieldError

PROBLEM_BASE = "https://registry.invalid/problems/"  # .invalid: a name that never resolves
PROBLEM_MEDIA_TYPE = "application/problem+json"
SLUGS = {404: "not-found", 405: "method-not-allowed", 422: "validation-error"}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    **extensions: Any,
) -> JSONResponse:
    """Return an ``application/problem+json`` response."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def validation_response(errors: Sequence[FieldError], instance: str | None) -> JSONResponse:
    """Return the 422 problem naming each refused field, where it was sent, and why."""
    items = [{"field": e.field, "in": e.location, "reason": e.reason} for e in errors]
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem_response(
        422, "validation-error", "The push is not valid", detail, instance=instance, errors=items
    )


def field_errors(exc: ValidationError | RequestValidationError) -> list[FieldError]:
    """Turn pydantic's errors into `FieldError`s with dotted field paths ("body" for the whole)."""
    errors: list[FieldError] = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        location = "body"
        if loc and loc[0] in ("body", "query", "path", "header"):
            location, loc = loc[0], loc[1:]
        errors.append(FieldError(".".join(loc) or "body", str(error.get("msg")), location))
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` leave as problem+json."""

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101  (registered for it only)
        return validation_response(field_errors(exc), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101  (registered for it only)
        slug = SLUGS.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, slug, str(exc.detail), instance=request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            500, "internal-error", "Internal error", type(exc).__name__, instance=request.url.path
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
