"""The units HTTP API: commands on units, locations and grants; queries over the read models.

Why this exists: it is the only way people and other systems change the unit tree and who may do
what where. Every write follows one recipe (shared.idempotency): a pydantic request (422 naming the
field), a bearer token (401), `Idempotency-Key` (a retry returns the first answer), `If-Match`
(412 when stale), 404 for a missing unit, 403 unless `shared.authz` allows it, then the handler in
one store transaction; it answers `{stream_id, version, position}` with the version as ETag.

Who may do what:
- registering a unit, changing, moving, suspending, reactivating, abolishing or merging it, and
  making a support unit serve others: a recursive `manage` grant covering the unit's parent (a
  directorate administrator acts on the units below its directorate), or `ministry_admin`; a root
  unit (no parent) only `ministry_admin`;
- adding, renaming and retiring locations: `manage` on the unit, or the above;
- granting and revoking unit roles: `shared.authz` `grant_roles` on the unit; global roles: only
  `ministry_admin`;
- reading the tree, a unit and its locations: any signed-in user (the list of units is public);
  a unit's history: `read` on it (any role there, or auditor, helpdesk, ministry_admin); the tree as
  of a date: auditor, helpdesk, ministry_admin, or `read` on the root asked for.

Reads may pass `min_position` (from a write's answer) to wait, bounded, until the read model shows
that write.
"""

# ruff: noqa: PLR0917  (FastAPI endpoints receive their dependencies as parameters)

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from shared import authz
from shared.auth import Principal, PrincipalDep
from shared.authz import Action
from shared.consumer import ProjectionLagTimeoutError, wait_for_position
from shared.events.envelope import Actor
from shared.events.units import GlobalRole, UnitRole
from shared.eventstore import AppendContext, AppendResult, EventStore, StoreTransaction
from shared.greek import display_name
from shared.idempotency import IdempotencyKeyDep, IfMatchVersion, run_idempotent
from shared.problems import Problem, problem_response
from shared.telemetry import current_traceparent
from shared.web import ClockDep, MinPosition, SessionDep, StoreDep, health_router
from units import domain, handlers, views
from units.commands import (
    AbolishUnit,
    AddLocation,
    ChangeUnitDetails,
    GrantGlobalRole,
    GrantRole,
    MergeUnit,
    ReactivateUnit,
    RegisterUnit,
    RenameLocation,
    RenameUnit,
    ReparentUnit,
    RetireLocation,
    RevokeGlobalRole,
    RevokeRole,
    StartServing,
    StopServing,
    SuspendUnit,
)
from units.projector import PROJECTION
from units.schemas import (
    AbolishUnitRequest,
    AddLocationRequest,
    ChangeUnitDetailsRequest,
    CommandResponse,
    GrantGlobalRoleRequest,
    GrantRoleRequest,
    HistoryEntryResponse,
    LocationCommandResponse,
    LocationResponse,
    MergeUnitRequest,
    ReactivateUnitRequest,
    RegisterUnitRequest,
    RenameLocationRequest,
    RenameUnitRequest,
    ReparentUnitRequest,
    RetireLocationRequest,
    RevokeRoleRequest,
    ServingResponse,
    StartServingRequest,
    StopServingRequest,
    SubtreeResponse,
    SuspendUnitRequest,
    UnitResponse,
    UnitSummaryResponse,
    UserGrantsResponse,
)
from units.settings import Settings

router = APIRouter()
router.include_router(health_router)

AUTHZ_PROJECTION = "units.authz"
READERS = frozenset({GlobalRole.AUDITOR, GlobalRole.HELPDESK, GlobalRole.MINISTRY_ADMIN})

# ---------------------------------------------------------------------------------------------
# Dependencies


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]

# ---------------------------------------------------------------------------------------------
# Domain errors → problem+json

# Error class → (status, slug, title, the request field it is about, if one).
_PROBLEMS: dict[type[domain.UnitsDomainError], tuple[int, str, str, str | None]] = {
    domain.InvalidUnitCodeError: (
        422,
        "invalid-unit-code",
        "The registry code is not accepted",
        "unit_id",
    ),
    domain.InvalidUnitDataError: (422, "validation-error", "The request is not valid", None),
    domain.UnitAlreadyRegisteredError: (
        409,
        "unit-already-registered",
        "The unit is already registered",
        "unit_id",
    ),
    domain.UnitNotFoundError: (404, "unit-not-found", "No such unit", None),
    domain.ParentNotFoundError: (
        422,
        "parent-not-found",
        "The parent unit is not registered",
        None,
    ),
    domain.ParentClosedError: (409, "parent-closed", "The parent unit takes no children", None),
    domain.UnitClosedError: (409, "unit-closed", "The unit is abolished or merged", None),
    domain.UnitNotActiveError: (409, "unit-not-active", "The unit is not active", None),
    domain.UnitNotSuspendedError: (409, "unit-not-suspended", "The unit is not suspended", None),
    domain.UnitCycleError: (409, "unit-cycle", "A unit cannot be its own ancestor", None),
    domain.UnitHasOpenChildrenError: (
        409,
        "unit-has-open-children",
        "Open units are below it",
        None,
    ),
    domain.EffectiveDateError: (
        422,
        "effective-date-before-registration",
        "The date is before the unit existed",
        None,
    ),
    domain.NotASupportUnitError: (
        409,
        "not-a-support-unit",
        "Only support units serve others",
        None,
    ),
    domain.NotServingError: (404, "not-serving", "The unit does not serve that unit", None),
    domain.LocationNotFoundError: (404, "location-not-found", "No such location", None),
    domain.LocationRetiredError: (409, "location-retired", "The location is retired", None),
    domain.LocationNameTakenError: (
        409,
        "location-name-taken",
        "Another location has this name",
        "name",
    ),
    domain.GrantNotFoundError: (404, "grant-not-found", "The user does not hold that role", None),
    domain.GrantAuthorityError: (403, "forbidden", "Not allowed", None),
}


def domain_problem(error: domain.UnitsDomainError, request: Request) -> Problem:
    """Return the problem a domain error becomes (a missing unit named in the body is a 422)."""
    status, slug, title, field = _PROBLEMS.get(
        type(error), (409, "rule-violated", "The command breaks a rule", None)
    )
    if isinstance(error, domain.InvalidUnitDataError):
        field = error.field_name
    if isinstance(error, domain.UnitNotFoundError) and error.unit_id != request.path_params.get(
        "unit_id"
    ):
        status, slug, title = (
            422,
            "referenced-unit-not-found",
            "A unit the request names is missing",
        )
    if isinstance(error, domain.ParentNotFoundError):
        field = "to_parent_id" if request.url.path.endswith("/reparent") else "parent_id"
    errors = [{"field": field, "in": "body", "reason": str(error)}] if field else []
    return Problem(status, slug, title, str(error), errors=errors)


def install_domain_problems(app: FastAPI) -> None:
    """Make the units domain errors leave `app` as problem+json."""

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, domain.UnitsDomainError)  # noqa: S101  (registered for these only)
        return problem_response(domain_problem(exc, request), request.url.path)

    async def on_lag(request: Request, exc: Exception) -> Response:
        problem = Problem(
            503,
            "read-model-lagging",
            "The read model has not caught up with that write yet",
            str(exc),
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(domain.UnitsDomainError, on_domain_error)
    app.add_exception_handler(ProjectionLagTimeoutError, on_lag)


# ---------------------------------------------------------------------------------------------
# Helpers


def _context(principal: Principal, unit_id: str | None = None) -> AppendContext:
    role = next((r.value for r in GlobalRole if r in principal.global_roles), None)
    return AppendContext(
        actor=Actor(principal.user_id, role), traceparent=current_traceparent(), unit_id=unit_id
    )


def _forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Not allowed", detail)


async def _require_unit(store: EventStore, unit_id: str) -> domain.Unit:
    unit = await handlers.load_unit(store, unit_id)
    if unit is None:
        raise Problem(404, "unit-not-found", "No such unit", f"unit {unit_id} is not registered")
    return unit


async def _require_admin_over(
    session: AsyncSession, principal: Principal, parent_id: str | None
) -> None:
    """Allow a recursive `manage` covering `parent_id`, or `ministry_admin` (alone for roots)."""
    if parent_id is None:
        if GlobalRole.MINISTRY_ADMIN not in await authz.global_roles_of(session, principal):
            raise _forbidden("only a ministry administrator acts on a root unit")
        return
    await authz.require(session, principal, Action.GRANT_ROLES, parent_id)


async def _require_global(
    session: AsyncSession, principal: Principal, roles: frozenset[GlobalRole]
) -> None:
    if not (await authz.global_roles_of(session, principal)) & roles:
        raise _forbidden("needs one of: " + ", ".join(sorted(r.value for r in roles)))


def _with_etag(response: Response) -> Response:
    if 200 <= response.status_code < 300:  # noqa: PLR2004  (the success range)
        body = json.loads(bytes(response.body))
        response.headers["ETag"] = f'"{body["version"]}"'
    return response


Handle = Callable[[StoreTransaction], Awaitable[AppendResult]]


async def _command(
    store: EventStore,
    key: IdempotencyKeyDep,
    handle: Handle,
    *,
    status: int = 200,
    extra: Callable[[AppendResult], dict[str, Any]] | None = None,
) -> Response:
    async def command(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        result = await handle(tx)
        body: dict[str, Any] = {
            "stream_id": result.stream_id,
            "version": result.version,
            "position": result.last_position,
        }
        if extra is not None:
            body.update(extra(result))
        return status, body

    return _with_etag(await run_idempotent(store, key, command))


async def _wait(request: Request, projection: str, stream_id: str, position: int | None) -> None:
    if not position:
        return
    settings: Settings = request.app.state.settings
    await wait_for_position(
        request.app.state.engine,
        projection,
        topic=settings.units_topic,
        stream_id=stream_id,
        position=position,
        partitions=settings.units_topic_partitions,
        timeout_s=settings.read_wait_timeout_s,
    )


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "display_name": display_name(row["name"])}


# ---------------------------------------------------------------------------------------------
# Commands on units


@router.post("/units", status_code=201, response_model=CommandResponse, tags=["units"])
async def register_unit(
    body: RegisterUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
) -> Response:
    """Register a unit (with its template locations) under a parent."""
    await _require_admin_over(session, principal, body.parent_id)
    command = RegisterUnit(
        **body.model_dump(exclude={"registered_on"}),
        registered_on=body.registered_on or clock.today(),
    )
    response = await _command(
        store,
        key,
        lambda tx: handlers.register_unit(
            command, store=store, clock=clock, context=_context(principal), tx=tx
        ),
        status=201,
    )
    if response.status_code == 201:  # noqa: PLR2004  (created)
        response.headers["Location"] = f"/units/{body.unit_id}"
    return response


@router.patch("/units/{unit_id}", response_model=CommandResponse, tags=["units"])
async def change_unit_details(
    unit_id: str,
    body: ChangeUnitDetailsRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Change a unit's details (a new name is recorded as a rename)."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = ChangeUnitDetails(
        unit_id=unit_id,
        changed_on=body.changed_on or clock.today(),
        **body.model_dump(exclude={"changed_on"}),
    )
    return await _command(
        store,
        key,
        lambda tx: handlers.change_unit_details(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/rename", response_model=CommandResponse, tags=["units"])
async def rename_unit(
    unit_id: str,
    body: RenameUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Rename a unit."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = RenameUnit(unit_id, body.name, body.renamed_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.rename_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/reparent", response_model=CommandResponse, tags=["units"])
async def reparent_unit(
    unit_id: str,
    body: ReparentUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Move a unit (with its subtree) under another parent."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    await _require_admin_over(session, principal, body.to_parent_id)
    command = ReparentUnit(unit_id, body.to_parent_id, body.reparented_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.reparent_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/suspend", response_model=CommandResponse, tags=["units"])
async def suspend_unit(
    unit_id: str,
    body: SuspendUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Suspend a unit."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = SuspendUnit(unit_id, body.suspended_on or clock.today(), body.reason)
    return await _command(
        store,
        key,
        lambda tx: handlers.suspend_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/reactivate", response_model=CommandResponse, tags=["units"])
async def reactivate_unit(
    unit_id: str,
    body: ReactivateUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Reactivate a suspended unit."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = ReactivateUnit(unit_id, body.reactivated_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.reactivate_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/abolish", response_model=CommandResponse, tags=["units"])
async def abolish_unit(
    unit_id: str,
    body: AbolishUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Abolish a unit that has no open unit below it."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = AbolishUnit(unit_id, body.abolished_on or clock.today(), body.decision_reference)
    open_children = await views.open_children(session, unit_id)
    return await _command(
        store,
        key,
        lambda tx: handlers.abolish_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            open_children=open_children,
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/merge", response_model=CommandResponse, tags=["units"])
async def merge_unit(
    unit_id: str,
    body: MergeUnitRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Merge a unit into another; its locations and grants go with it."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    into = await handlers.load_unit(store, body.into_unit_id)
    if into is not None:
        await _require_admin_over(session, principal, into.effective_parent_id)
    command = MergeUnit(
        unit_id, body.into_unit_id, body.merged_on or clock.today(), body.decision_reference
    )
    return await _command(
        store,
        key,
        lambda tx: handlers.merge_unit(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/units/{unit_id}/serving", response_model=CommandResponse, tags=["units"])
async def start_serving(
    unit_id: str,
    body: StartServingRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Make a support unit (ΚΕΠΛΗΝΕΤ, ΕΚΦΕ, ...) serve another unit."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = StartServing(unit_id, body.served_unit_id, body.started_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.start_serving(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post(
    "/units/{unit_id}/serving/{served_unit_id}/stop",
    response_model=CommandResponse,
    tags=["units"],
)
async def stop_serving(
    unit_id: str,
    served_unit_id: str,
    body: StopServingRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """End a support unit's service to a unit."""
    unit = await _require_unit(store, unit_id)
    await _require_admin_over(session, principal, unit.effective_parent_id)
    command = StopServing(unit_id, served_unit_id, body.stopped_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.stop_serving(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Commands on locations


async def _require_location_authority(
    session: AsyncSession, principal: Principal, unit: domain.Unit
) -> None:
    if await authz.may(session, principal, Action.MANAGE_EQUIPMENT, unit.unit_id):
        return
    await _require_admin_over(session, principal, unit.effective_parent_id)


@router.post(
    "/units/{unit_id}/locations",
    status_code=201,
    response_model=LocationCommandResponse,
    tags=["locations"],
)
async def add_location(
    unit_id: str,
    body: AddLocationRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Add a location to a unit."""
    unit = await _require_unit(store, unit_id)
    await _require_location_authority(session, principal, unit)
    command = AddLocation(unit_id, body.name, body.kind, body.added_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.add_location(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
        status=201,
        extra=lambda result: {"location_id": result.events[-1].data["location_id"]},
    )


@router.post(
    "/units/{unit_id}/locations/{location_id}/rename",
    response_model=CommandResponse,
    tags=["locations"],
)
async def rename_location(
    unit_id: str,
    location_id: str,
    body: RenameLocationRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Rename a location."""
    unit = await _require_unit(store, unit_id)
    await _require_location_authority(session, principal, unit)
    command = RenameLocation(unit_id, location_id, body.name, body.renamed_on or clock.today())
    return await _command(
        store,
        key,
        lambda tx: handlers.rename_location(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post(
    "/units/{unit_id}/locations/{location_id}/retire",
    response_model=CommandResponse,
    tags=["locations"],
)
async def retire_location(
    unit_id: str,
    location_id: str,
    body: RetireLocationRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Retire a location."""
    unit = await _require_unit(store, unit_id)
    await _require_location_authority(session, principal, unit)
    command = RetireLocation(unit_id, location_id, body.retired_on or clock.today(), body.reason)
    return await _command(
        store,
        key,
        lambda tx: handlers.retire_location(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            tx=tx,
            expected_version=expected_version,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Commands on grants


@router.post("/grants", status_code=201, response_model=CommandResponse, tags=["grants"])
async def grant_role(
    body: GrantRoleRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Grant a role on a unit (recursive: over its subtree) to a user."""
    await _require_unit(store, body.unit_id)
    await authz.require(session, principal, Action.GRANT_ROLES, body.unit_id)
    command = GrantRole(body.user_id, body.unit_id, body.role, body.is_recursive)
    return await _command(
        store,
        key,
        lambda tx: handlers.grant_role(
            command,
            store=store,
            clock=clock,
            context=_context(principal, body.unit_id),
            tx=tx,
            expected_version=expected_version,
        ),
        status=201,
    )


@router.post("/grants/revoke", response_model=CommandResponse, tags=["grants"])
async def revoke_role(
    body: RevokeRoleRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Revoke a user's role on a unit."""
    await _require_unit(store, body.unit_id)
    await authz.require(session, principal, Action.GRANT_ROLES, body.unit_id)
    command = RevokeRole(body.user_id, body.unit_id, body.role)
    return await _command(
        store,
        key,
        lambda tx: handlers.revoke_role(
            command,
            store=store,
            clock=clock,
            context=_context(principal, body.unit_id),
            tx=tx,
            expected_version=expected_version,
        ),
    )


@router.post("/global-roles", status_code=201, response_model=CommandResponse, tags=["grants"])
async def grant_global_role(
    body: GrantGlobalRoleRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Grant a system-wide role (ministry administrators only)."""
    grantor_roles = await authz.global_roles_of(session, principal)
    command = GrantGlobalRole(body.user_id, body.role)
    return await _command(
        store,
        key,
        lambda tx: handlers.grant_global_role(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            grantor_roles=grantor_roles,
            tx=tx,
            expected_version=expected_version,
        ),
        status=201,
    )


@router.post("/global-roles/revoke", response_model=CommandResponse, tags=["grants"])
async def revoke_global_role(
    body: GrantGlobalRoleRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Revoke a system-wide role (ministry administrators only)."""
    grantor_roles = await authz.global_roles_of(session, principal)
    command = RevokeGlobalRole(body.user_id, body.role)
    return await _command(
        store,
        key,
        lambda tx: handlers.revoke_global_role(
            command,
            store=store,
            clock=clock,
            context=_context(principal),
            grantor_roles=grantor_roles,
            tx=tx,
            expected_version=expected_version,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Queries


@router.get("/units", response_model=list[UnitSummaryResponse], tags=["queries"])
async def search_units(
    principal: PrincipalDep,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200, description="words of the name")] = None,
    code_prefix: Annotated[str | None, Query(max_length=32)] = None,
    unit_type: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(pattern="^(active|suspended|abolished|merged)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Find units by name (ignoring accents and case), code prefix, type and status."""
    del principal
    rows = await views.search(
        session,
        name=q,
        code_prefix=code_prefix,
        unit_type=unit_type,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [_summary(row) for row in rows]


async def _unit_row(session: AsyncSession, unit_id: str) -> dict[str, Any]:
    row = await views.get_unit(session, unit_id)
    if row is None:
        raise Problem(404, "unit-not-found", "No such unit", f"unit {unit_id} is not registered")
    return row


@router.get("/units/{unit_id}", response_model=UnitResponse, tags=["queries"])
async def get_unit(
    unit_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    min_position: MinPosition = None,
) -> Response:
    """Return a unit by its registry code (ETag: its stream version)."""
    del principal
    await _wait(request, PROJECTION, unit_id, min_position)
    row = _summary(await _unit_row(session, unit_id))
    body = UnitResponse.model_validate(row).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": f'"{row["version"]}"'})


@router.get("/units/{unit_id}/children", response_model=list[UnitSummaryResponse], tags=["queries"])
async def get_children(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    include_closed: bool = False,
) -> list[dict[str, Any]]:
    """Return the units directly below a unit."""
    del principal
    await _unit_row(session, unit_id)
    rows = await views.children(session, unit_id, include_closed=include_closed)
    return [_summary(row) for row in rows]


@router.get(
    "/units/{unit_id}/ancestors", response_model=list[UnitSummaryResponse], tags=["queries"]
)
async def get_ancestors(
    unit_id: str, principal: PrincipalDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Return a unit's ancestors, its parent first."""
    del principal
    await _unit_row(session, unit_id)
    return [_summary(row) for row in await views.ancestors(session, unit_id)]


@router.get("/units/{unit_id}/subtree", response_model=SubtreeResponse, tags=["queries"])
async def get_subtree(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Return the counts of units below a unit by type and status, and a page of them."""
    del principal
    await _unit_row(session, unit_id)
    counts = await views.subtree_counts(session, unit_id)
    units = await views.subtree_units(session, unit_id, limit=limit, offset=offset)
    return {
        "unit_id": unit_id,
        "total": counts.total,
        "by_type": counts.by_type,
        "by_status": counts.by_status,
        "units": [_summary(row) for row in units],
    }


@router.get("/units/{unit_id}/locations", response_model=list[LocationResponse], tags=["queries"])
async def get_locations(
    unit_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    include_retired: bool = False,
    min_position: MinPosition = None,
) -> list[dict[str, Any]]:
    """Return the locations a unit holds."""
    del principal
    await _wait(request, PROJECTION, unit_id, min_position)
    await _unit_row(session, unit_id)
    return await views.locations(session, unit_id, include_retired=include_retired)


@router.get("/units/{unit_id}/serving", response_model=ServingResponse, tags=["queries"])
async def get_serving(unit_id: str, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """Return which units a support unit serves, and which support units serve it."""
    del principal
    await _unit_row(session, unit_id)
    return {"unit_id": unit_id, **await views.serving(session, unit_id)}


@router.get("/units/{unit_id}/grants", response_model=list[dict[str, Any]], tags=["queries"])
async def get_unit_grants(
    unit_id: str, principal: PrincipalDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Return who holds which role on a unit (on it, or on units merged into it)."""
    await authz.require(session, principal, Action.READ, unit_id)
    return await views.grants_on_unit(session, unit_id)


@router.get("/units/{unit_id}/history", response_model=list[HistoryEntryResponse], tags=["queries"])
async def get_history(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    store: StoreDep,
    after_position: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Return a page of every event about a unit, from the event store, oldest first."""
    await authz.require(session, principal, Action.READ, unit_id)
    events = await views.history(store, unit_id, after_position=after_position, limit=limit)
    if not events and after_position == 0:
        await _require_unit(store, unit_id)
    return [
        {
            "position": e.position,
            "stream_id": e.stream_id,
            "version": e.version,
            "type": e.type,
            "recorded_at": e.recorded_at,
            "actor_id": e.actor.user_id if e.actor else None,
            "actor_role": e.actor.role if e.actor else None,
            "data": dict(e.data),
        }
        for e in events
    ]


@router.get("/tree", tags=["queries"], response_class=StreamingResponse)
async def get_tree_as_of(
    principal: PrincipalDep,
    session: SessionDep,
    store: StoreDep,
    on: date,
    root: Annotated[str | None, Query(max_length=32)] = None,
    include_closed: bool = False,
) -> StreamingResponse:
    """Stream the tree as it stood on date `on` (NDJSON, depth first), folded from the events."""
    if root is None:
        await _require_global(session, principal, READERS)
    else:
        await authz.require(session, principal, Action.READ, root)

    async def lines() -> AsyncIterator[bytes]:
        async for row in views.tree_as_of(store, on, root=root, include_closed=include_closed):
            yield (json.dumps(row, ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _user(principal: Principal, user_id: str) -> str:
    return principal.user_id if user_id == "me" else user_id


@router.get("/users/{user_id}/grants", response_model=UserGrantsResponse, tags=["queries"])
async def get_user_grants(
    user_id: str,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Return a user's grants and global roles (`me`: the caller's own)."""
    target = _user(principal, user_id)
    if target != principal.user_id:
        await _require_global(session, principal, READERS)
    await _wait(request, AUTHZ_PROJECTION, domain.grants_stream(target), min_position)
    return await views.grants_of_user(session, target)


@router.get("/users/{user_id}/units", response_model=list[UnitSummaryResponse], tags=["queries"])
async def get_user_units(
    user_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    role: Annotated[list[UnitRole] | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Return the active units a user may act on, with the roles held (`me`: the caller)."""
    target = _user(principal, user_id)
    if target != principal.user_id:
        await _require_global(session, principal, READERS)
    rows = await views.units_user_may_act_on(session, target, role or list(UnitRole))
    return [_summary({**row, "status": "active"}) for row in rows]
