"""Command handlers: load the state a rule needs from the event store, decide, append.

Why this exists: the HTTP API and the bulk importer run the same commands, and must get the same
rules and the same errors. Each handler loads the unit (and for tree rules the lineage of the units
involved) from the event store, asks `units.domain`, and appends the events with the version it read
as the expected version, so a concurrent change fails with `VersionConflictError` instead of being
lost.

Usage::

    result = await register_unit(command, store=store, clock=clock, context=context)
    unit = await load_unit(store, "0551010")          # domain.Unit | None

    # inside an idempotent HTTP command (shared.idempotency.run_idempotent) pass its transaction:
    result = await rename_unit(command, store=store, clock=clock, context=context, tx=tx)

Notes:
- Tree changes (register, reparent, abolish, merge) take one transaction-scoped advisory lock before
  reading, so two of them never decide on the same stale tree: without it, two concurrent moves
  (A under B, B under A) could each pass the cycle check and together make a cycle. Other
  commands touch one stream and rely on its expected version alone.
- `expected_version` is the client's If-Match: a mismatch with the version read fails at once.
- A command that changes nothing (a rename to the same name, a re-run import row) appends nothing
  and returns the current version with no positions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from shared.clock import Clock
from shared.events.base import Event
from shared.events.units import GlobalRole
from shared.eventstore import (
    AppendContext,
    AppendResult,
    EventStore,
    StoreTransaction,
    VersionConflictError,
)
from shared.outbox import advisory_key
from units import domain
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
from units.domain import (
    InvalidUnitCodeError,
    ParentNotFoundError,
    Unit,
    UnitAlreadyRegisteredError,
    UnitNotFoundError,
    UnitsDomainError,
    UserGrants,
)

TREE_LOCK_KEY = advisory_key("units:tree")
MAX_DEPTH = 64

__all__ = [
    "InvalidUnitCodeError",
    "ParentNotFoundError",
    "UnitAlreadyRegisteredError",
    "UnitNotFoundError",
    "UnitsDomainError",
    "abolish_unit",
    "add_location",
    "change_unit_details",
    "grant_global_role",
    "grant_role",
    "lineage",
    "load_grants",
    "load_unit",
    "merge_unit",
    "reactivate_unit",
    "register_unit",
    "rename_location",
    "rename_unit",
    "reparent_unit",
    "retire_location",
    "revoke_global_role",
    "revoke_role",
    "start_serving",
    "stop_serving",
    "suspend_unit",
]


async def load_unit(store: EventStore, unit_id: str) -> Unit | None:
    """Return the unit as its stream says it is now, or None if it was never registered."""
    unit: Unit | None = None
    for recorded in await store.load(unit_id):
        unit = domain.evolve(unit, recorded.event(), recorded.version)
    return unit


async def load_grants(store: EventStore, user_id: str) -> UserGrants:
    """Return the roles a user holds, from their grants stream."""
    grants = UserGrants(user_id)
    for recorded in await store.load(domain.grants_stream(user_id)):
        grants = domain.evolve_grants(grants, recorded.event(), recorded.version)
    return grants


async def lineage(store: EventStore, unit_id: str) -> list[str]:
    """Return `unit_id` and its effective ancestors, nearest first, read from the event store."""
    chain: list[str] = []
    current: str | None = unit_id
    while current is not None and current not in chain and len(chain) < MAX_DEPTH:
        chain.append(current)
        unit = await load_unit(store, current)
        current = unit.effective_parent_id if unit is not None else None
    return chain


@asynccontextmanager
async def _transaction(
    store: EventStore, tx: StoreTransaction | None, *, lock_tree: bool = False
) -> AsyncIterator[StoreTransaction]:
    if tx is None:
        async with store.transaction() as own:
            if lock_tree:
                await own.connection.execute("SELECT pg_advisory_xact_lock(%s)", (TREE_LOCK_KEY,))
            yield own
        return
    if lock_tree:
        await tx.connection.execute("SELECT pg_advisory_xact_lock(%s)", (TREE_LOCK_KEY,))
    yield tx


def _check_expected(stream_id: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise VersionConflictError(stream_id, expected, actual)


async def _append(
    tx: StoreTransaction,
    stream_id: str,
    events: Sequence[Event],
    *,
    version: int,
    context: AppendContext,
) -> AppendResult:
    if not events:
        return AppendResult(stream_id, version, ())
    tx.append(stream_id, events, expected_version=version, context=context)
    results = await tx.flush()
    return next(r for r in results if r.stream_id == stream_id)


async def _decide_on_unit(
    store: EventStore,
    unit_id: str,
    decide: Callable[[Unit | None], list[Event]],
    *,
    context: AppendContext,
    tx: StoreTransaction | None,
    expected_version: int | None,
) -> AppendResult:
    async with _transaction(store, tx) as own:
        unit = await load_unit(store, unit_id)
        version = unit.version if unit else 0
        _check_expected(unit_id, expected_version, version)
        events = decide(unit)
        return await _append(own, unit_id, events, version=version, context=context)


async def register_unit(
    command: RegisterUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
) -> AppendResult:
    """Register a unit with its template locations; raise a `UnitsDomainError` if refused."""
    del clock  # registration dates come from the command; the parameter keeps handlers uniform
    domain.validate_code(command.unit_id)
    async with _transaction(store, tx, lock_tree=True) as own:
        existing = await load_unit(store, command.unit_id)
        parent = await load_unit(store, command.parent_id) if command.parent_id else None
        events = domain.register(existing, parent, command)
        return await _append(own, command.unit_id, events, version=0, context=context)


async def change_unit_details(
    command: ChangeUnitDetails,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Record the details that differ (a new name as `UnitRenamed`); nothing if none differ."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.change_details(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def rename_unit(
    command: RenameUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Rename a unit."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.rename(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def reparent_unit(
    command: ReparentUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Move a unit under another parent, refusing cycles and closed parents."""
    del clock
    async with _transaction(store, tx, lock_tree=True) as own:
        unit = await load_unit(store, command.unit_id)
        version = unit.version if unit else 0
        _check_expected(command.unit_id, expected_version, version)
        new_parent = await load_unit(store, command.to_parent_id)
        chain = await lineage(store, command.to_parent_id) if new_parent else []
        events = domain.reparent(unit, new_parent, chain, command)
        return await _append(own, command.unit_id, events, version=version, context=context)


async def suspend_unit(
    command: SuspendUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Suspend an active unit."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.suspend(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def reactivate_unit(
    command: ReactivateUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Reactivate a suspended unit."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.reactivate(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def abolish_unit(
    command: AbolishUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    open_children: Sequence[str] = (),
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Abolish a unit with no open unit below it (`open_children`, from the read model)."""
    del clock
    async with _transaction(store, tx, lock_tree=True) as own:
        unit = await load_unit(store, command.unit_id)
        version = unit.version if unit else 0
        _check_expected(command.unit_id, expected_version, version)
        events = domain.abolish(unit, command, open_children)
        return await _append(own, command.unit_id, events, version=version, context=context)


async def merge_unit(
    command: MergeUnit,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Merge a unit into another, moving its open locations there, in one transaction."""
    del clock
    async with _transaction(store, tx, lock_tree=True) as own:
        unit = await load_unit(store, command.unit_id)
        version = unit.version if unit else 0
        _check_expected(command.unit_id, expected_version, version)
        into = await load_unit(store, command.into_unit_id)
        chain = await lineage(store, command.into_unit_id) if into else []
        decision = domain.merge(unit, into, chain, command)
        if decision.absorbing and into is not None:
            own.append(
                into.unit_id, decision.absorbing, expected_version=into.version, context=context
            )
        return await _append(
            own, command.unit_id, decision.merged, version=version, context=context
        )


async def start_serving(
    command: StartServing,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Make a support unit serve another unit."""
    del clock
    served = await load_unit(store, command.served_unit_id)
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.start_serving(unit, served, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def stop_serving(
    command: StopServing,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """End a support unit's service to a unit."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.stop_serving(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def add_location(
    command: AddLocation,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Add a location to a unit (its id is in the result's event)."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.add_location(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def rename_location(
    command: RenameLocation,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Rename a unit's location."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.rename_location(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def retire_location(
    command: RetireLocation,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Retire a unit's location."""
    del clock
    return await _decide_on_unit(
        store,
        command.unit_id,
        lambda unit: domain.retire_location(unit, command),
        context=context,
        tx=tx,
        expected_version=expected_version,
    )


async def grant_role(
    command: GrantRole,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Grant a role on a unit; the caller has checked the grantor's authority (shared.authz)."""
    stream = domain.grants_stream(command.user_id)
    async with _transaction(store, tx) as own:
        grants = await load_grants(store, command.user_id)
        _check_expected(stream, expected_version, grants.version)
        unit = await load_unit(store, command.unit_id)
        events = domain.grant(grants, unit, command, granted_at=clock.now())
        return await _append(own, stream, events, version=grants.version, context=context)


async def revoke_role(
    command: RevokeRole,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Revoke a role on a unit; the caller has checked the grantor's authority (shared.authz)."""
    stream = domain.grants_stream(command.user_id)
    async with _transaction(store, tx) as own:
        grants = await load_grants(store, command.user_id)
        _check_expected(stream, expected_version, grants.version)
        events = domain.revoke(grants, command, revoked_at=clock.now())
        return await _append(own, stream, events, version=grants.version, context=context)


async def grant_global_role(
    command: GrantGlobalRole,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    grantor_roles: frozenset[GlobalRole],
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Grant a global role; `grantor_roles` are the grantor's own global roles."""
    stream = domain.grants_stream(command.user_id)
    async with _transaction(store, tx) as own:
        grants = await load_grants(store, command.user_id)
        _check_expected(stream, expected_version, grants.version)
        events = domain.grant_global(
            grants, command, granted_at=clock.now(), grantor_roles=grantor_roles
        )
        return await _append(own, stream, events, version=grants.version, context=context)


async def revoke_global_role(
    command: RevokeGlobalRole,
    *,
    store: EventStore,
    clock: Clock,
    context: AppendContext,
    grantor_roles: frozenset[GlobalRole],
    tx: StoreTransaction | None = None,
    expected_version: int | None = None,
) -> AppendResult:
    """Revoke a global role; `grantor_roles` are the grantor's own global roles."""
    stream = domain.grants_stream(command.user_id)
    async with _transaction(store, tx) as own:
        grants = await load_grants(store, command.user_id)
        _check_expected(stream, expected_version, grants.version)
        events = domain.revoke_global(
            grants, command, revoked_at=clock.now(), grantor_roles=grantor_roles
        )
        return await _append(own, stream, events, version=grants.version, context=context)
