"""RFC 9457 problem+json: the one shape every error of every service takes.

Why this exists: clients on bad connections need to know, from the body alone, what failed and
which field to fix. Each failure has a stable `type` URI (`https://ictcadastre.gr/problems/<slug>`),
a title, the HTTP status, a human `detail`, and for validation failures the offending fields.

Usage: raise `Problem(...)` (or a subclass) from a handler or dependency;
`install_problem_handlers(app)` turns it, request-validation errors and unexpected exceptions into
`application/problem+json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.eventstore import VersionConflictError

PROBLEM_BASE = "https://ictcadastre.gr/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)


class Problem(Exception):  # noqa: N818  (a Problem is the RFC's own word, not an error kind)
    """An error that leaves the service as an RFC 9457 problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        """Return the stable URI naming this kind of failure."""
        return PROBLEM_BASE + self.slug

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        """Return the problem document."""
        body: dict[str, Any] = {"type": self.type_uri, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    """Render `problem` as an `application/problem+json` response."""
    return JSONResponse(
        problem.to_dict(instance),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else ".".join(str(p) for p in loc)


def validation_problem(errors: Sequence[Any]) -> Problem:
    """Turn pydantic/FastAPI validation errors into one 422 problem naming each field and reason."""
    items = [
        {
            "field": _field_path(e.get("loc", ())),
            "in": str(e.get("loc", ("body",))[0]) if e.get("loc") else "body",
            "reason": e.get("msg", "invalid"),
        }
        for e in errors
    ]
    detail = "; ".join(f"{i['field']}: {i['reason']}" for i in items)
    return Problem(422, "validation-error", "The request is not valid", detail, errors=items)


def version_conflict_problem(exc: VersionConflictError, request: Request) -> Problem:
    """Turn a version conflict into 412 (the client sent If-Match) or 409 (it did not)."""
    conditional = "if-match" in request.headers
    status, slug, title = (
        (412, "precondition-failed", "The resource changed since you read it")
        if conditional
        else (409, "version-conflict", "The resource was changed by someone else")
    )
    return Problem(
        status,
        slug,
        title,
        "Reload it, check the change still makes sense, and send it again.",
        stream_id=exc.stream_id,
        expected_version=exc.expected,
        current_version=exc.actual,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` leave as problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)  # noqa: S101  (registered for Problem only)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        return problem_response(validation_problem(exc.errors()), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        problem = Problem(exc.status_code, slug, str(exc.detail), headers=dict(exc.headers or {}))
        return problem_response(problem, request.url.path)

    async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VersionConflictError)  # noqa: S101
        return problem_response(version_conflict_problem(exc, request), request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        problem = Problem(500, "internal-error", "Internal error", "The error was logged.")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(VersionConflictError, on_conflict)
    app.add_exception_handler(Exception, on_unexpected)
