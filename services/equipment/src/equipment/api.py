"""The equipment HTTP API: the catalogue, items, bundles and transfers; inventory queries.

Why this exists: it is how schools, directorates and the Ministry record and read ICT equipment.
Every write follows one recipe (shared.idempotency): a pydantic request (422 naming the field), a
bearer token (401), `Idempotency-Key` (a retry returns the first answer), `If-Match` (412 when
stale), 404 for a missing item or unit, 403 unless `shared.authz` allows it, then the handler in one
store transaction; it answers `{stream_id, version, position}` with the version as ETag.

Who may do what (grants from `units.events`; recursive grants reach the subtree):
- register an item, correct its details, propose a product for a unit: `entry` on the unit;
- change status, move, bundle/unbundle, withdraw, dispatch or cancel a transfer: `manage` on the
  unit holding the item; accept or reject a transfer: `manage` on the destination;
- approve, reject or merge products, and propose approved ones: `ministry_admin`;
- read a unit's inventory, an item, its history, pending transfers, exports: `read` on the unit
  (any role there, or auditor, helpdesk, ministry_admin); the catalogue: anyone signed in.

Reads may pass `min_position` (from a write's answer) to wait, bounded, until the read model shows
that write.
"""

# ruff: noqa: PLR0917  (FastAPI endpoints receive their dependencies as parameters)

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from equipment import access, catalogue, domain, handlers, views
from equipment.commands import (
    AcceptTransfer,
    ApproveProduct,
    BundlePart,
    CancelTransfer,
    ChangeItemStatus,
    CorrectItemDetails,
    MergeProduct,
    MoveItem,
    ProposeProduct,
    RegisterItem,
    RejectProduct,
    RejectTransfer,
    TransferItem,
    UnbundlePart,
    WithdrawItem,
)
from equipment.projector import PROJECTION
from equipment.schemas import (
    AcceptTransferRequest,
    BundlePartRequest,
    CategoryResponse,
    ChangeItemStatusRequest,
    CloseTransferRequest,
    CommandResponse,
    CorrectItemDetailsRequest,
    CountsResponse,
    HistoryEntryResponse,
    ItemPageResponse,
    ItemResponse,
    MergeProductRequest,
    MoveItemRequest,
    PendingTransfersResponse,
    ProductResponse,
    ProposeProductRequest,
    RegisterItemRequest,
    RejectProductRequest,
    TransferItemRequest,
    UnbundlePartRequest,
    WithdrawItemRequest,
)
from equipment.settings import Settings
from shared import authz
from shared.auth import Principal, PrincipalDep
from shared.authz import Action
from shared.clock import ATHENS, Clock
from shared.consumer import ProjectionLagTimeoutError, wait_for_position
from shared.events.envelope import Actor
from shared.events.equipment import ItemStatus
from shared.events.units import GlobalRole
from shared.eventstore import AppendContext, AppendResult, EventStore, StoreTransaction
from shared.idempotency import REPLAYED_HEADER, IdempotencyKeyDep, IfMatchVersion, run_idempotent
from shared.problems import Problem, problem_response
from shared.telemetry import current_traceparent
from shared.web import ClockDep, MinPosition, SessionDep, StoreDep, health_router

router = APIRouter()
router.include_router(health_router)

# ---------------------------------------------------------------------------------------------
# Dependencies


# StoreDep, ClockDep, SessionDep and MinPosition come from shared.web.


# ---------------------------------------------------------------------------------------------
# Domain errors → problem+json

# Error class → (status, slug, title, the request field it is about, if one).
_PROBLEMS: dict[type[domain.EquipmentDomainError], tuple[int, str, str, str | None]] = {
    domain.InvalidItemDataError: (422, "validation-error", "The request is not valid", None),
    domain.CategoryNotFoundError: (422, "category-not-found", "No such category", "category_id"),
    domain.ProductNotFoundError: (404, "product-not-found", "No such product", None),
    domain.ProductAlreadyProposedError: (
        409,
        "product-already-exists",
        "The product exists with other details",
        "product_id",
    ),
    domain.ProductNotApprovedError: (
        409,
        "product-not-approved",
        "The product is not approved",
        "product_id",
    ),
    domain.ProductMergedError: (409, "product-merged", "The product was merged", "product_id"),
    domain.ProductStateError: (409, "product-state", "The product does not allow this", None),
    domain.UnitNotFoundError: (404, "unit-not-found", "No such unit", None),
    domain.UnitNotActiveError: (409, "unit-not-active", "The unit is not active", None),
    domain.LocationNotFoundError: (
        422,
        "location-not-found",
        "No such open location in the unit",
        None,
    ),
    domain.ItemNotFoundError: (404, "item-not-found", "No such item", None),
    domain.ItemAlreadyRegisteredError: (
        409,
        "item-already-registered",
        "The item is registered with other details",
        "item_id",
    ),
    domain.SerialNumberRequiredError: (
        422,
        "serial-number-required",
        "A serial number is required",
        "serial_number",
    ),
    domain.SerialNumberTakenError: (
        409,
        "serial-number-taken",
        "The serial number is recorded on another item",
        "serial_number",
    ),
    domain.ActDatedInFutureError: (
        422,
        "act-dated-in-future",
        "The date is in the future",
        "performed_on",
    ),
    domain.ActBeforeCertificationError: (
        422,
        "act-before-certification",
        "The date is before the unit's last certification",
        "performed_on",
    ),
    domain.ActBeforeItemHistoryError: (
        422,
        "act-before-item-history",
        "The date is before the item's last recorded act",
        "performed_on",
    ),
    domain.ItemWithdrawnError: (409, "item-withdrawn", "The item is withdrawn", None),
    domain.ItemLostError: (409, "item-lost", "The item is recorded as lost", None),
    domain.ItemInTransitError: (409, "item-in-transit", "The item is in transit", None),
    domain.ItemNotInTransitError: (
        409,
        "item-not-in-transit",
        "The item has no pending transfer",
        None,
    ),
    domain.StatusChangeError: (
        409,
        "status-change-refused",
        "The status change is refused",
        "status",
    ),
    domain.TransferToSameUnitError: (
        422,
        "transfer-to-same-unit",
        "The item is already in that unit",
        "to_unit_id",
    ),
    domain.BundleRuleError: (409, "bundle-rule", "A bundle rule forbids this", None),
    domain.PartInBundleError: (409, "part-in-bundle", "The item is inside a bundle", None),
}


def domain_problem(error: domain.EquipmentDomainError, request: Request) -> Problem:
    """Return the problem a domain error becomes (a missing thing named in the body is a 422)."""
    status, slug, title, field = _PROBLEMS.get(
        type(error), (409, "rule-violated", "The command breaks a rule", None)
    )
    if isinstance(error, domain.InvalidItemDataError):
        field = error.field_name
    if isinstance(error, domain.LocationNotFoundError):
        field = "to_location_id" if "to_location_id" in _body_fields(request) else "location_id"
    named_in_body = {
        domain.UnitNotFoundError: ("to_unit_id", "unit_id"),
        domain.ProductNotFoundError: ("product_id", "into_product_id"),
        domain.ItemNotFoundError: ("part_item_id",),
    }
    for kind, fields in named_in_body.items():
        if isinstance(error, kind):
            in_body = [f for f in fields if f in _body_fields(request)]
            if in_body and not _in_path(request, error):
                status, slug, title = (
                    422,
                    "referenced-not-found",
                    "Something the request names is missing",
                )
                field = in_body[0]
    errors = [{"field": field, "in": "body", "reason": str(error)}] if field else []
    return Problem(status, slug, title, str(error), errors=errors)


def _body_fields(request: Request) -> set[str]:
    fields: set[str] = getattr(request.state, "body_fields", set())
    return fields


def _in_path(request: Request, error: domain.EquipmentDomainError) -> bool:
    values = {str(v) for v in request.path_params.values()}
    for name in ("item_id", "product_id", "unit_id"):
        value = getattr(error, name, None)
        if value is not None and str(value) in values:
            return True
    return False


def install_domain_problems(app: FastAPI) -> None:
    """Make the equipment domain errors leave `app` as problem+json."""

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, domain.EquipmentDomainError)  # noqa: S101  (registered for these)
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

    async def on_cursor(request: Request, exc: Exception) -> Response:
        problem = Problem(
            422,
            "validation-error",
            "The request is not valid",
            "cursor: not a cursor this service gave out",
            errors=[{"field": "cursor", "in": "query", "reason": "unknown cursor"}],
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(domain.EquipmentDomainError, on_domain_error)
    app.add_exception_handler(ProjectionLagTimeoutError, on_lag)
    app.add_exception_handler(views.InvalidCursorError, on_cursor)


# ---------------------------------------------------------------------------------------------
# Helpers


def _context(principal: Principal, unit_id: str | None = None) -> AppendContext:
    role = next((r.value for r in GlobalRole if r in principal.global_roles), None)
    return AppendContext(
        actor=Actor(principal.user_id, role), traceparent=current_traceparent(), unit_id=unit_id
    )


def _with_etag(response: Response, version: int | None = None) -> Response:
    if 200 <= response.status_code < 300:  # noqa: PLR2004  (the success range)
        if version is None:  # a replayed answer: its version is in its body
            version = json.loads(bytes(response.body))["version"]
        response.headers["ETag"] = f'"{version}"'
    return response


Handle = Callable[[StoreTransaction], Awaitable[AppendResult]]


async def _command(
    store: EventStore,
    key: IdempotencyKeyDep,
    handle: Handle,
    *,
    status: int = 200,
    defer_begin: bool = False,
) -> Response:
    produced: list[int] = []

    async def command(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
        result = await handle(tx)
        produced.append(result.version)
        return status, {
            "stream_id": result.stream_id,
            "version": result.version,
            "position": result.last_position,
        }

    response = await run_idempotent(store, key, command, defer_begin=defer_begin)
    replayed = REPLAYED_HEADER in response.headers
    return _with_etag(response, produced[-1] if produced and not replayed else None)


def _remember_fields(request: Request, body: Any) -> None:
    request.state.body_fields = set(type(body).model_fields)


async def _require_global(
    session: AsyncSession, principal: Principal, role: GlobalRole = GlobalRole.MINISTRY_ADMIN
) -> None:
    if role not in await authz.global_roles_of(session, principal):
        raise Problem(403, "forbidden", "Not allowed", f"needs the global role {role.value}")


async def _require_known_unit(session: AsyncSession, unit_id: str) -> dict[str, Any]:
    row = await views.get_unit(session, unit_id)
    if row is None:
        raise Problem(404, "unit-not-found", "No such unit", f"unit {unit_id} is not registered")
    return row


async def _require_item(store: EventStore, item_id: UUID) -> domain.Item:
    item = await handlers.load_item(store, item_id)
    if item is None:
        raise Problem(404, "item-not-found", "No such item", f"item {item_id} is not registered")
    return item


async def _wait(request: Request, stream_id: str, position: int | None) -> None:
    if not position:
        return
    settings: Settings = request.app.state.settings
    await wait_for_position(
        request.app.state.engine,
        PROJECTION,
        topic=settings.equipment_topic,
        stream_id=stream_id,
        position=position,
        partitions=settings.equipment_topic_partitions,
        timeout_s=settings.read_wait_timeout_s,
    )


def _today(clock: Clock, day: date | None) -> date:
    return day or clock.today(ATHENS)


# ---------------------------------------------------------------------------------------------
# Catalogue


def _category(category: catalogue.Category) -> dict[str, Any]:
    return {
        "category_id": category.category_id,
        "label_el": category.label_el,
        "label_en": category.label_en,
        "parent_id": category.parent_id,
        "is_bundle": category.is_bundle,
        "uses_serial_numbers": category.uses_serial_numbers,
        "is_component": category.is_component,
        "is_assignable": category.is_assignable,
        "parts": [
            {"category_id": r.category_id, "minimum": r.minimum, "maximum": r.maximum}
            for r in category.parts
        ],
    }


@router.get("/categories", response_model=list[CategoryResponse], tags=["catalogue"])
async def get_categories(principal: PrincipalDep) -> list[dict[str, Any]]:
    """Return the category tree (groups first, each followed by its categories)."""
    del principal
    return [_category(c) for c in catalogue.CATEGORIES.values()]


@router.post("/products", status_code=201, response_model=CommandResponse, tags=["catalogue"])
async def propose_product(
    body: ProposeProductRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
) -> Response:
    """Propose a product for a unit (`entry` there); a ministry administrator's is approved."""
    _remember_fields(request, body)
    is_admin = GlobalRole.MINISTRY_ADMIN in await authz.global_roles_of(session, principal)
    if body.proposed_by_unit_id is not None:
        await _require_known_unit(session, body.proposed_by_unit_id)
        if not is_admin:
            await authz.require(
                session, principal, Action.RECORD_EQUIPMENT, body.proposed_by_unit_id
            )
    elif not is_admin:
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            "proposed_by_unit_id: name the unit proposing the product",
            errors=[{"field": "proposed_by_unit_id", "in": "body", "reason": "required"}],
        )
    command = ProposeProduct(
        product_id=body.product_id or uuid4(),
        category_id=body.category_id,
        manufacturer=body.manufacturer,
        model=body.model,
        part_number=body.part_number,
        attributes=dict(body.attributes),
        proposed_by_unit_id=body.proposed_by_unit_id,
        is_approved=is_admin,
    )
    response = await _command(
        store,
        key,
        lambda tx: handlers.propose_product(
            command, store=store, clock=clock, context=_context(principal), tx=tx
        ),
        status=201,
    )
    if response.status_code == 201:  # noqa: PLR2004  (created)
        response.headers["Location"] = f"/products/{command.product_id}"
    return response


async def _product_command(
    product_id: UUID,
    principal: Principal,
    store: EventStore,
    session: AsyncSession,
    key: IdempotencyKeyDep,
    handle: Handle,
) -> Response:
    await _require_global(session, principal)
    if await handlers.load_product(store, product_id) is None:
        raise Problem(404, "product-not-found", "No such product", f"product {product_id}")
    return await _command(store, key, handle)


@router.post("/products/{product_id}/approve", response_model=CommandResponse, tags=["catalogue"])
async def approve_product(
    product_id: UUID,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Approve a proposed product (ministry administrators only)."""
    command = ApproveProduct(product_id)
    return await _product_command(
        product_id, principal, store, session, key,
        lambda tx: handlers.approve_product(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/products/{product_id}/reject", response_model=CommandResponse, tags=["catalogue"])
async def reject_product(
    product_id: UUID,
    body: RejectProductRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Refuse a proposed product (ministry administrators only)."""
    command = RejectProduct(product_id, body.reason)
    return await _product_command(
        product_id, principal, store, session, key,
        lambda tx: handlers.reject_product(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/products/{product_id}/merge", response_model=CommandResponse, tags=["catalogue"])
async def merge_product(
    product_id: UUID,
    body: MergeProductRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Merge a duplicate product into an approved one (ministry administrators only)."""
    _remember_fields(request, body)
    command = MergeProduct(product_id, body.into_product_id)
    return await _product_command(
        product_id, principal, store, session, key,
        lambda tx: handlers.merge_product(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.get("/products", response_model=list[ProductResponse], tags=["catalogue"])
async def search_products(
    principal: PrincipalDep,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(proposed|approved|rejected|merged)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Find products by words of manufacturer, model or part number, category and status."""
    del principal
    return await views.search_products(
        session, text=q, category_id=category_id, status=status, limit=limit, offset=offset
    )


@router.get("/products/{product_id}", response_model=ProductResponse, tags=["catalogue"])
async def get_product(
    product_id: UUID,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Return a product."""
    del principal
    await _wait(request, domain.product_stream(product_id), min_position)
    row = await views.get_product(session, product_id)
    if row is None:
        raise Problem(404, "product-not-found", "No such product", f"product {product_id}")
    return row


# ---------------------------------------------------------------------------------------------
# Items


@router.post("/items", status_code=201, response_model=CommandResponse, tags=["items"])
async def register_item(
    body: RegisterItemRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    key: IdempotencyKeyDep,
) -> Response:
    """Register an item in a unit (`entry` there); a repeat with the same item id is answered."""
    _remember_fields(request, body)
    if key is not None:  # a stored answer is replayed only to whom the checks let through
        # A session only here: without a key the checks run on the command's own connection.
        sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
        async with sessions() as session:
            await _require_known_unit(session, body.unit_id)
            await authz.require(session, principal, Action.RECORD_EQUIPMENT, body.unit_id)
    command = RegisterItem(
        item_id=body.item_id or uuid4(),
        unit_id=body.unit_id,
        product_id=body.product_id,
        location_id=body.location_id,
        performed_on=_today(clock, body.performed_on),
        serial_number=body.serial_number,
        asset_number=body.asset_number,
        acquisition=body.acquisition,
        warranty_ends_on=body.warranty_ends_on,
        status=body.status,
        notes=body.notes,
    )

    async def handle(tx: StoreTransaction) -> AppendResult:
        # The unit's lock, its 404 and the 403 in one statement on the command's connection.
        uow = handlers.UnitOfWork(tx, store.source)
        if key is None:  # nothing follows the append: COMMIT goes with it, the locks held less
            tx.commit_with_next_flush()
        unit = await access.check_unit_command_and_read(
            uow,
            principal,
            Action.RECORD_EQUIPMENT,
            command.unit_id,
            *handlers.registration_streams(command),
        )
        return await handlers.register_item(
            command,
            store=store,
            clock=clock,
            context=_context(principal, body.unit_id),
            directory=access.Known(unit),
            uow=uow,
        )

    # BEGIN goes with the checks' statement (without a key: see run_idempotent).
    response = await _command(store, key, handle, status=201, defer_begin=True)
    if response.status_code == 201:  # noqa: PLR2004  (created)
        response.headers["Location"] = f"/items/{command.item_id}"
    return response


ItemHandle = Callable[[StoreTransaction, views.UnitDirectory], Awaitable[AppendResult]]


async def _item_command(
    item_id: UUID,
    action: Action,
    principal: Principal,
    store: EventStore,
    session: AsyncSession,
    key: IdempotencyKeyDep,
    handle: ItemHandle,
    *,
    unit_of: Callable[[domain.Item], str] | None = None,
) -> Response:
    item = await _require_item(store, item_id)
    unit_id = unit_of(item) if unit_of is not None else item.unit_id
    await authz.require(session, principal, action, unit_id)
    directory = views.UnitDirectory(session)
    return await _command(store, key, lambda tx: handle(tx, directory))


def _destination(item: domain.Item) -> str:
    if item.transfer is None:
        raise domain.ItemNotInTransitError(item.item_id)
    return item.transfer.to_unit_id


@router.post("/items/{item_id}/corrections", response_model=CommandResponse, tags=["items"])
async def correct_item_details(
    item_id: UUID,
    body: CorrectItemDetailsRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Correct an item's recorded details (`entry` on its unit); a correction is an event."""
    _remember_fields(request, body)
    command = CorrectItemDetails(
        item_id=item_id,
        reason=body.reason,
        performed_on=_today(clock, body.performed_on),
        product_id=body.product_id,
        serial_number=body.serial_number,
        asset_number=body.asset_number,
        acquisition=body.acquisition,
        warranty_ends_on=body.warranty_ends_on,
        notes=body.notes,
        cleared_fields=tuple(body.cleared_fields),
    )
    return await _item_command(
        item_id, Action.RECORD_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.correct_item_details(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/status", response_model=CommandResponse, tags=["items"])
async def change_item_status(
    item_id: UUID,
    body: ChangeItemStatusRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Change an item's functional status, saying why (`manage` on its unit)."""
    command = ChangeItemStatus(item_id, body.status, body.reason, _today(clock, body.performed_on))
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.change_item_status(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/moves", response_model=CommandResponse, tags=["items"])
async def move_item(
    item_id: UUID,
    body: MoveItemRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Move an item (with its parts) to another location of its unit (`manage`)."""
    _remember_fields(request, body)
    command = MoveItem(item_id, body.to_location_id, _today(clock, body.performed_on))
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, directory: handlers.move_item(
            command, store=store, clock=clock, context=_context(principal), directory=directory,
            tx=tx, expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/parts", response_model=CommandResponse, tags=["items"])
async def bundle_part(
    item_id: UUID,
    body: BundlePartRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Put an item into this bundle (`manage` on its unit)."""
    _remember_fields(request, body)
    command = BundlePart(item_id, body.part_item_id, _today(clock, body.performed_on))
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.bundle_part(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post(
    "/items/{item_id}/parts/{part_item_id}/remove", response_model=CommandResponse, tags=["items"]
)
async def unbundle_part(
    item_id: UUID,
    part_item_id: UUID,
    body: UnbundlePartRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Take a part out of this bundle (`manage` on its unit)."""
    command = UnbundlePart(item_id, part_item_id, _today(clock, body.performed_on), body.reason)
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.unbundle_part(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/withdrawal", response_model=CommandResponse, tags=["items"])
async def withdraw_item(
    item_id: UUID,
    body: WithdrawItemRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Withdraw an item (with its parts) by a decision (`manage` on its unit)."""
    command = WithdrawItem(
        item_id,
        body.decision_reference,
        body.decided_on,
        _today(clock, body.performed_on),
        body.reason,
    )
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.withdraw_item(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/transfer", response_model=CommandResponse, tags=["transfers"])
async def transfer_item(
    item_id: UUID,
    body: TransferItemRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Dispatch an item to another unit (`manage` on the source)."""
    _remember_fields(request, body)
    command = TransferItem(
        item_id,
        body.to_unit_id,
        body.transfer_id or uuid4(),
        _today(clock, body.performed_on),
        body.reason,
    )
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, directory: handlers.transfer_item(
            command, store=store, clock=clock, context=_context(principal), directory=directory,
            tx=tx, expected_version=expected_version,
        ),
    )  # fmt: skip


@router.post("/items/{item_id}/transfer/accept", response_model=CommandResponse, tags=["transfers"])
async def accept_transfer(
    item_id: UUID,
    body: AcceptTransferRequest,
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Accept an item in transit into a location (`manage` on the destination)."""
    _remember_fields(request, body)
    command = AcceptTransfer(
        item_id,
        body.to_location_id,
        _today(clock, body.performed_on),
        assign_asset_number=body.assign_asset_number,
        asset_number=body.asset_number,
    )
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, directory: handlers.accept_transfer(
            command, store=store, clock=clock, context=_context(principal), directory=directory,
            tx=tx, expected_version=expected_version,
        ),
        unit_of=_destination,
    )  # fmt: skip


@router.post("/items/{item_id}/transfer/reject", response_model=CommandResponse, tags=["transfers"])
async def reject_transfer(
    item_id: UUID,
    body: CloseTransferRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Refuse an item in transit; it returns to the source (`manage` on the destination)."""
    command = RejectTransfer(item_id, _today(clock, body.performed_on), body.reason)
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.reject_transfer(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
        unit_of=_destination,
    )  # fmt: skip


@router.post("/items/{item_id}/transfer/cancel", response_model=CommandResponse, tags=["transfers"])
async def cancel_transfer(
    item_id: UUID,
    body: CloseTransferRequest,
    principal: PrincipalDep,
    store: StoreDep,
    clock: ClockDep,
    session: SessionDep,
    key: IdempotencyKeyDep,
    expected_version: IfMatchVersion,
) -> Response:
    """Call off a transfer not yet accepted (`manage` on the source)."""
    command = CancelTransfer(item_id, _today(clock, body.performed_on), body.reason)
    return await _item_command(
        item_id, Action.MANAGE_EQUIPMENT, principal, store, session, key,
        lambda tx, _: handlers.cancel_transfer(
            command, store=store, clock=clock, context=_context(principal), tx=tx,
            expected_version=expected_version,
        ),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Queries


async def _require_read_item(
    session: AsyncSession, principal: Principal, item_id: UUID
) -> list[str]:
    units = await views.units_of_item(session, item_id)
    if not units:
        raise Problem(404, "item-not-found", "No such item", f"item {item_id} is not registered")
    for unit_id in units:
        if await authz.may(session, principal, Action.READ, unit_id):
            return units
    await authz.require(session, principal, Action.READ, units[0])
    return units


@router.get("/items/{item_id}", response_model=ItemResponse, tags=["queries"])
async def get_item(
    item_id: UUID,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    min_position: MinPosition = None,
) -> Response:
    """Return an item (ETag: its stream version); its holder and, in transit, its destination."""
    await _wait(request, domain.item_stream(item_id), min_position)
    await _require_read_item(session, principal, item_id)
    row = await views.get_item(session, item_id)
    assert row is not None  # noqa: S101  (found just above)
    body = ItemResponse.model_validate(row).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": f'"{row["version"]}"'})


_HISTORY_IDS = frozenset({"item_id"})


@router.get("/items/{item_id}/history", response_model=list[HistoryEntryResponse], tags=["queries"])
async def get_item_history(
    item_id: UUID, principal: PrincipalDep, session: SessionDep, store: StoreDep
) -> list[dict[str, Any]]:
    """Return every event of an item, oldest first: who, when, and what changed (event store)."""
    events = await views.history(store, domain.item_stream(item_id))
    if not events:
        raise Problem(404, "item-not-found", "No such item", f"item {item_id} is not registered")
    units = {e.unit_id for e in events if e.unit_id}
    allowed = False
    for unit_id in sorted(units):
        if await authz.may(session, principal, Action.READ, unit_id):
            allowed = True
            break
    if not allowed:
        await authz.require(session, principal, Action.READ, events[-1].unit_id or "")
    return [
        {
            "position": e.position,
            "version": e.version,
            "type": e.type,
            "recorded_at": e.recorded_at,
            "performed_on": e.data.get("performed_on"),
            "unit_id": e.unit_id,
            "actor_id": e.actor.user_id if e.actor else None,
            "actor_role": e.actor.role if e.actor else None,
            "changes": {
                k: v
                for k, v in e.data.items()
                if k not in _HISTORY_IDS and v is not None and v != []
            },
        }
        for e in events
    ]


def _filters(
    category_id: str | None,
    status: ItemStatus | None,
    location_id: str | None,
    product_id: UUID | None,
    q: str | None,
) -> views.ItemFilters:
    return views.ItemFilters(
        category_id=category_id,
        status=status.value if status is not None else None,
        location_id=location_id,
        product_id=product_id,
        text=q,
    )


CategoryQuery = Annotated[str | None, Query(max_length=64)]
StatusQuery = Annotated[ItemStatus | None, Query()]
LocationQuery = Annotated[str | None, Query(max_length=64)]
ProductQuery = Annotated[UUID | None, Query()]
TextQuery = Annotated[
    str | None, Query(max_length=200, description="words of the serial or asset number")
]


async def _require_read_unit(session: AsyncSession, principal: Principal, unit_id: str) -> None:
    await _require_known_unit(session, unit_id)
    await authz.require(session, principal, Action.READ, unit_id)


@router.get("/units/{unit_id}/items", response_model=ItemPageResponse, tags=["queries"])
async def list_items(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    category_id: CategoryQuery = None,
    status: StatusQuery = None,
    location_id: LocationQuery = None,
    product_id: ProductQuery = None,
    q: TextQuery = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Return a page of the unit's current inventory (items in transit are in neither)."""
    await _require_read_unit(session, principal, unit_id)
    filters = _filters(category_id, status, location_id, product_id, q)
    after = views.decode_cursor(cursor) if cursor else None
    rows = await views.list_items(session, unit_id, filters, limit=limit + 1, after=after)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = (
        views.encode_cursor(page[-1]["asset_number"], page[-1]["item_id"]) if more else None
    )
    return {"unit_id": unit_id, "items": page, "next_cursor": next_cursor}


@router.get("/units/{unit_id}/items/counts", response_model=CountsResponse, tags=["queries"])
async def count_items(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    category_id: CategoryQuery = None,
    status: StatusQuery = None,
    location_id: LocationQuery = None,
    product_id: ProductQuery = None,
    q: TextQuery = None,
) -> dict[str, Any]:
    """Return how many items the listing holds, by category and by status."""
    await _require_read_unit(session, principal, unit_id)
    filters = _filters(category_id, status, location_id, product_id, q)
    return {"unit_id": unit_id, **await views.count_items(session, unit_id, filters)}


@router.get(
    "/units/{unit_id}/transfers/pending", response_model=PendingTransfersResponse, tags=["queries"]
)
async def get_pending_transfers(
    unit_id: str, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """Return the items in transit from and to the unit."""
    await _require_read_unit(session, principal, unit_id)
    return {"unit_id": unit_id, **await views.pending_transfers(session, unit_id)}


@router.get("/units/{unit_id}/locations", tags=["queries"])
async def get_unit_locations(
    unit_id: str, principal: PrincipalDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Return the unit's locations as this service knows them."""
    await _require_read_unit(session, principal, unit_id)
    return await views.unit_locations(session, unit_id)


EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("asset_number", "Αριθμός παγίου"),
    ("category", "Κατηγορία"),
    ("manufacturer", "Κατασκευαστής"),
    ("model", "Μοντέλο"),
    ("serial_number", "Σειριακός αριθμός"),
    ("location", "Χώρος"),
    ("status", "Κατάσταση"),
    ("acquired_on", "Ημερομηνία κτήσης"),
    ("funding_programme", "Πρόγραμμα χρηματοδότησης"),
    ("contract", "Σύμβαση"),
    ("cost_eur", "Κόστος (EUR)"),
    ("invoice", "Τιμολόγιο"),
    ("warranty_ends_on", "Λήξη εγγύησης"),
    ("is_product_pending_approval", "Προϊόν προς έγκριση"),
    ("has_missing_parts", "Λείπουν μέρη"),
    ("notes", "Παρατηρήσεις"),
    ("item_id", "Αναγνωριστικό"),
)
STATUS_LABELS = {
    ItemStatus.IN_USE: "Σε χρήση",
    ItemStatus.IN_STORAGE: "Σε αποθήκη",
    ItemStatus.OUT_OF_ORDER: "Εκτός λειτουργίας",
    ItemStatus.UNDER_REPAIR: "Σε επισκευή",
    ItemStatus.FOR_WITHDRAWAL: "Προς απόσυρση",
    ItemStatus.WITHDRAWN: "Αποσύρθηκε",
    ItemStatus.LOST: "Απολέσθηκε",
}


def _export_row(row: dict[str, Any], locations: dict[str, str]) -> list[Any]:
    category = catalogue.category(row["category_id"])
    values = {
        **row,
        "category": category.label_el if category else row["category_id"],
        "location": locations.get(row["location_id"], row["location_id"]),
        "status": STATUS_LABELS.get(ItemStatus(row["status"]), row["status"]),
        "item_id": str(row["item_id"]),
        "cost_eur": None if row["cost_eur"] is None else str(row["cost_eur"]),
    }
    return [values[name] for name, _ in EXPORT_COLUMNS]


async def _export_rows(
    session: AsyncSession, unit_id: str, filters: views.ItemFilters
) -> AsyncIterator[list[Any]]:
    locations = {
        row["location_id"]: row["name"] for row in await views.unit_locations(session, unit_id)
    }
    async for row in views.iterate_items(session, unit_id, filters):
        yield _export_row(row, locations)


@router.get("/units/{unit_id}/items.csv", tags=["exports"], response_class=StreamingResponse)
async def export_items_csv(
    unit_id: str,
    request: Request,
    principal: PrincipalDep,
    category_id: CategoryQuery = None,
    status: StatusQuery = None,
    location_id: LocationQuery = None,
    product_id: ProductQuery = None,
    q: TextQuery = None,
) -> StreamingResponse:
    """Stream the listing as CSV (UTF-8 with BOM, so spreadsheets read the Greek right)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with factory() as session:
        await _require_read_unit(session, principal, unit_id)
    filters = _filters(category_id, status, location_id, product_id, q)

    async def lines() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([label for _, label in EXPORT_COLUMNS])
        yield ("\ufeff" + buffer.getvalue()).encode()
        async with factory() as session:
            async for values in _export_rows(session, unit_id, filters):
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(["" if v is None else v for v in values])
                yield buffer.getvalue().encode()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="inventory-{unit_id}.csv"'},
    )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/units/{unit_id}/items.xlsx", tags=["exports"], response_class=StreamingResponse)
async def export_items_xlsx(
    unit_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    category_id: CategoryQuery = None,
    status: StatusQuery = None,
    location_id: LocationQuery = None,
    product_id: ProductQuery = None,
    q: TextQuery = None,
) -> StreamingResponse:
    """Return the listing as an XLSX workbook (written row by row in openpyxl's write-only mode)."""
    await _require_read_unit(session, principal, unit_id)
    filters = _filters(category_id, status, location_id, product_id, q)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=f"Απογραφή {unit_id}"[:31])
    sheet.append([label for _, label in EXPORT_COLUMNS])
    async for values in _export_rows(session, unit_id, filters):
        sheet.append(values)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115  (closed by the stream)
    workbook.save(spool)
    spool.seek(0)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := spool.read(64 * 1024):
                yield chunk
        finally:
            spool.close()

    return StreamingResponse(
        chunks(),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="inventory-{unit_id}.xlsx"'},
    )
