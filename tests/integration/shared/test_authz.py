"""The authorization projection on real PostgreSQL: units events in, scope answers out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.auth import Principal
from shared.authz import (
    Action,
    apply,
    create_tables,
    global_roles_view,
    grants_view,
    may,
    require,
    units_user_may_act_on,
    units_view,
)
from shared.db import create_engine, session_factory
from shared.events.base import Event
from shared.events.envelope import RecordedEvent
from shared.events.units import (
    GlobalRole,
    GlobalRoleGranted,
    GlobalRoleRevoked,
    RoleGranted,
    RoleRevoked,
    UnitAbolished,
    UnitMerged,
    UnitReactivated,
    UnitRegistered,
    UnitRenamed,
    UnitReparented,
    UnitRole,
    UnitSuspended,
)
from shared.problems import Problem
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.infra

ON = date(2026, 9, 1)
AT = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

# A slice of the real tree: Ministry → region → two directorates → schools.
MINISTRY = "0000000"
REGION = "0100001"  # ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΔΥΤΙΚΗΣ ΕΛΛΑΔΑΣ
DIRECTORATE = "0100105"  # ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΑΙΤΩΛΟΑΚΑΡΝΑΝΙΑΣ
OTHER_DIRECTORATE = "0200105"
SCHOOL_A = "0160075"
SCHOOL_B = "0180017"
SCHOOL_C = "0260001"  # under the other directorate

ALICE = Principal("alice")
BOB = Principal("bob")


def registered(unit_id: str, parent_id: str | None, unit_type: str) -> UnitRegistered:
    return UnitRegistered(
        unit_id=unit_id,
        parent_id=parent_id,
        name=f"UNIT {unit_id}",
        unit_type=unit_type,
        registered_on=ON,
    )


TREE: list[Event] = [
    registered(MINISTRY, None, "ΥΠΟΥΡΓΕΙΟ"),
    registered(REGION, MINISTRY, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ"),
    registered(DIRECTORATE, REGION, "ΔΙΕΥΘΥΝΣΗ Δ.Ε."),
    registered(OTHER_DIRECTORATE, REGION, "ΔΙΕΥΘΥΝΣΗ Δ.Ε."),
    registered(SCHOOL_A, DIRECTORATE, "ΓΥΜΝΑΣΙΟ"),
    registered(SCHOOL_B, DIRECTORATE, "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
    registered(SCHOOL_C, OTHER_DIRECTORATE, "ΓΥΜΝΑΣΙΟ"),
]


def granted(user: str, unit_id: str, role: UnitRole, *, is_recursive: bool = False) -> RoleGranted:
    return RoleGranted(
        user_id=user, unit_id=unit_id, role=role, is_recursive=is_recursive, granted_at=AT
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(fresh_database: DatabaseFactory) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database("authz"), pool_size=2)
    async with engine.begin() as connection:
        await create_tables(connection)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with engine.begin() as connection:
        await connection.execute(
            text("TRUNCATE authz_units_view, authz_grants_view, authz_global_roles_view")
        )
    async with session_factory(engine)() as session:
        await fold(session, *TREE)
        yield session


async def fold(session: AsyncSession, *events: Event) -> None:
    """Apply events and commit, as the projector does."""
    for event in events:
        await apply(event, session)
    await session.commit()


async def snapshot(session: AsyncSession) -> list[list[tuple[Any, ...]]]:
    tables = (units_view, grants_view, global_roles_view)
    result = []
    for table in tables:
        rows = await session.execute(select(table).order_by(*table.primary_key.columns))
        result.append([tuple(row) for row in rows])
    return result


async def test_direct_grant_covers_its_unit_and_role_only(session: AsyncSession) -> None:
    await fold(session, granted("alice", SCHOOL_A, UnitRole.ENTRY))

    assert await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_A)
    assert await may(session, ALICE, Action.READ, SCHOOL_A)
    # Roles are not hierarchical, and a plain grant does not reach other units.
    assert not await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_A)
    assert not await may(session, ALICE, Action.CERTIFY, SCHOOL_A)
    assert not await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_B)
    assert not await may(session, ALICE, Action.READ, DIRECTORATE)
    assert not await may(session, BOB, Action.READ, SCHOOL_A)


async def test_non_recursive_grant_on_a_directorate_does_not_reach_its_schools(
    session: AsyncSession,
) -> None:
    await fold(session, granted("alice", DIRECTORATE, UnitRole.MANAGE))

    assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, DIRECTORATE)
    assert not await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_A)
    assert not await may(session, ALICE, Action.GRANT_ROLES, DIRECTORATE)


async def test_recursive_grant_covers_grandchildren_but_not_ancestors(
    session: AsyncSession,
) -> None:
    await fold(session, granted("alice", REGION, UnitRole.MANAGE, is_recursive=True))

    for unit in (REGION, DIRECTORATE, SCHOOL_A, SCHOOL_C):
        assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, unit), unit
        assert await may(session, ALICE, Action.GRANT_ROLES, unit), unit
    assert not await may(session, ALICE, Action.READ, MINISTRY)
    assert not await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_A)


async def test_revoked_grant_no_longer_covers(session: AsyncSession) -> None:
    await fold(session, granted("alice", DIRECTORATE, UnitRole.CERTIFY, is_recursive=True))
    assert await may(session, ALICE, Action.CERTIFY, SCHOOL_B)

    await fold(
        session,
        RoleRevoked(user_id="alice", unit_id=DIRECTORATE, role=UnitRole.CERTIFY, revoked_at=AT),
    )

    assert not await may(session, ALICE, Action.CERTIFY, SCHOOL_B)
    assert not await may(session, ALICE, Action.READ, DIRECTORATE)
    assert await units_user_may_act_on(session, "alice", UnitRole.CERTIFY) == []


async def test_regranting_without_recursion_narrows_the_grant(session: AsyncSession) -> None:
    await fold(session, granted("alice", DIRECTORATE, UnitRole.MANAGE, is_recursive=True))
    assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_A)

    await fold(session, granted("alice", DIRECTORATE, UnitRole.MANAGE, is_recursive=False))

    assert not await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_A)
    assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, DIRECTORATE)


async def test_reparenting_moves_coverage_with_the_subtree(session: AsyncSession) -> None:
    await fold(session, granted("alice", DIRECTORATE, UnitRole.MANAGE, is_recursive=True))
    assert not await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_C)

    await fold(
        session,
        UnitReparented(
            unit_id=SCHOOL_C,
            from_parent_id=OTHER_DIRECTORATE,
            to_parent_id=DIRECTORATE,
            reparented_on=ON,
        ),
        UnitReparented(
            unit_id=SCHOOL_A,
            from_parent_id=DIRECTORATE,
            to_parent_id=OTHER_DIRECTORATE,
            reparented_on=ON,
        ),
    )

    assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_C)
    assert not await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_A)
    assert await units_user_may_act_on(session, "alice", UnitRole.MANAGE) == sorted(
        [DIRECTORATE, SCHOOL_B, SCHOOL_C]
    )


async def test_merged_units_grants_follow_it_and_it_becomes_read_only(
    session: AsyncSession,
) -> None:
    await fold(
        session,
        granted("alice", SCHOOL_B, UnitRole.ENTRY),
        UnitMerged(unit_id=SCHOOL_B, into_unit_id=SCHOOL_A, merged_on=ON),
    )

    assert await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_A)
    assert await may(session, ALICE, Action.READ, SCHOOL_B)  # its history stays readable
    assert not await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_B)
    with pytest.raises(Problem) as refused:
        await require(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_B)
    assert (refused.value.status, refused.value.slug) == (403, "unit-read-only")
    assert await units_user_may_act_on(session, "alice", UnitRole.ENTRY) == [SCHOOL_A]


async def test_merged_directorates_schools_come_under_the_absorbing_directorate(
    session: AsyncSession,
) -> None:
    await fold(
        session,
        granted("alice", DIRECTORATE, UnitRole.MANAGE, is_recursive=True),
        granted("bob", OTHER_DIRECTORATE, UnitRole.MANAGE, is_recursive=True),
        UnitMerged(unit_id=OTHER_DIRECTORATE, into_unit_id=DIRECTORATE, merged_on=ON),
    )

    # SCHOOL_C still names the merged directorate as parent; it now counts as under DIRECTORATE.
    assert await may(session, ALICE, Action.MANAGE_EQUIPMENT, SCHOOL_C)
    # Bob's recursive grant followed his directorate into the absorbing one, subtree and all.
    assert await may(session, BOB, Action.MANAGE_EQUIPMENT, SCHOOL_A)
    assert await may(session, BOB, Action.MANAGE_EQUIPMENT, DIRECTORATE)
    assert await units_user_may_act_on(session, "bob", UnitRole.MANAGE) == sorted(
        [DIRECTORATE, SCHOOL_A, SCHOOL_B, SCHOOL_C]
    )


async def test_abolished_unit_is_only_readable(session: AsyncSession) -> None:
    await fold(
        session,
        granted("alice", SCHOOL_A, UnitRole.CERTIFY),
        UnitAbolished(unit_id=SCHOOL_A, abolished_on=ON, decision_reference="ΦΕΚ 1234/Β/2026"),
    )

    assert await may(session, ALICE, Action.READ, SCHOOL_A)
    assert not await may(session, ALICE, Action.CERTIFY, SCHOOL_A)
    await require(session, ALICE, Action.READ, SCHOOL_A)
    with pytest.raises(Problem) as refused:
        await require(session, ALICE, Action.CERTIFY, SCHOOL_A)
    assert refused.value.slug == "unit-read-only"
    assert await units_user_may_act_on(session, "alice", UnitRole.CERTIFY) == []


async def test_suspension_freezes_a_unit_until_it_is_reactivated(session: AsyncSession) -> None:
    await fold(
        session,
        granted("alice", SCHOOL_A, UnitRole.ENTRY),
        UnitSuspended(unit_id=SCHOOL_A, suspended_on=ON, reason="building works"),
    )
    assert not await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_A)
    assert await may(session, ALICE, Action.READ, SCHOOL_A)

    await fold(session, UnitReactivated(unit_id=SCHOOL_A, reactivated_on=ON))

    assert await may(session, ALICE, Action.RECORD_EQUIPMENT, SCHOOL_A)


async def test_global_roles_read_everywhere_and_only_admins_grant(session: AsyncSession) -> None:
    await fold(
        session,
        GlobalRoleGranted(user_id="auditor1", role=GlobalRole.AUDITOR, granted_at=AT),
        GlobalRoleGranted(user_id="admin1", role=GlobalRole.MINISTRY_ADMIN, granted_at=AT),
        UnitAbolished(unit_id=SCHOOL_C, abolished_on=ON),
    )
    auditor, admin = Principal("auditor1"), Principal("admin1")

    for unit in (MINISTRY, SCHOOL_A, SCHOOL_C):
        assert await may(session, auditor, Action.READ, unit), unit
        assert await may(session, admin, Action.READ, unit), unit
    assert not await may(session, auditor, Action.RECORD_EQUIPMENT, SCHOOL_A)
    assert not await may(session, auditor, Action.GRANT_ROLES, SCHOOL_A)
    assert await may(session, admin, Action.GRANT_ROLES, SCHOOL_A)
    assert await may(session, admin, Action.GRANT_ROLES, SCHOOL_C)  # to revoke stale access
    # Certifying is the unit head's own act: no global role does it for them.
    assert not await may(session, admin, Action.CERTIFY, SCHOOL_A)

    await fold(
        session, GlobalRoleRevoked(user_id="auditor1", role=GlobalRole.AUDITOR, revoked_at=AT)
    )

    assert not await may(session, auditor, Action.READ, SCHOOL_A)


async def test_global_roles_carried_by_the_token_count_too(session: AsyncSession) -> None:
    helpdesk = Principal("desk1", frozenset({GlobalRole.HELPDESK}))

    assert await may(session, helpdesk, Action.READ, SCHOOL_B)
    assert not await may(session, helpdesk, Action.MANAGE_EQUIPMENT, SCHOOL_B)


async def test_unit_unknown_to_the_projection_is_covered_by_no_unit_grant(
    session: AsyncSession,
) -> None:
    await fold(session, granted("alice", "9999999", UnitRole.ENTRY))
    auditor = Principal("auditor1", frozenset({GlobalRole.AUDITOR}))

    assert not await may(session, ALICE, Action.RECORD_EQUIPMENT, "9999999")
    assert await may(session, auditor, Action.READ, "9999999")
    with pytest.raises(Problem) as refused:
        await require(session, ALICE, Action.READ, "9999999")
    assert (refused.value.status, refused.value.slug) == (403, "forbidden")

    # The grant was projected before its unit (another stream); it counts once the unit arrives.
    await fold(session, registered("9999999", DIRECTORATE, "ΓΥΜΝΑΣΙΟ"))

    assert await may(session, ALICE, Action.RECORD_EQUIPMENT, "9999999")


async def test_applying_every_event_twice_changes_nothing(session: AsyncSession) -> None:
    history: list[Event] = [
        granted("alice", DIRECTORATE, UnitRole.MANAGE, is_recursive=True),
        granted("bob", SCHOOL_A, UnitRole.ENTRY),
        RoleRevoked(user_id="bob", unit_id=SCHOOL_A, role=UnitRole.ENTRY, revoked_at=AT),
        UnitRenamed(unit_id=SCHOOL_A, name="2ο ΓΥΜΝΑΣΙΟ", renamed_on=ON),
        UnitReparented(
            unit_id=SCHOOL_C,
            from_parent_id=OTHER_DIRECTORATE,
            to_parent_id=DIRECTORATE,
            reparented_on=ON,
        ),
        UnitSuspended(unit_id=SCHOOL_B, suspended_on=ON),
        UnitMerged(unit_id=OTHER_DIRECTORATE, into_unit_id=DIRECTORATE, merged_on=ON),
        GlobalRoleGranted(user_id="admin1", role=GlobalRole.MINISTRY_ADMIN, granted_at=AT),
    ]
    await fold(session, *history)
    once = await snapshot(session)
    await session.execute(
        text("TRUNCATE authz_units_view, authz_grants_view, authz_global_roles_view")
    )

    for event in [*TREE, *history]:
        await fold(session, event, event)
    # A registration redelivered after later changes must not undo them.
    await fold(session, registered(SCHOOL_C, OTHER_DIRECTORATE, "ΓΥΜΝΑΣΙΟ"))

    assert await snapshot(session) == once


def as_kafka_record(event: Event, stream_id: str, position: int) -> RecordedEvent:
    """Return `event` as the projector receives it: stored, published, read back from Kafka."""
    stored = RecordedEvent(
        event_id=uuid4(),
        source="units",
        stream_id=stream_id,
        version=1,
        position=position,
        type=event.type,
        schema_version=event.schema_version,
        data=event.payload(),
        recorded_at=AT,
        unit_id=stream_id,
    )
    return RecordedEvent.from_kafka(
        stored.kafka_key(), stored.kafka_value(), stored.kafka_headers()
    )


async def test_events_read_back_from_their_kafka_form_fold_the_same(
    session: AsyncSession,
) -> None:
    records = [
        as_kafka_record(registered("0551020", DIRECTORATE, "ΓΥΜΝΑΣΙΟ"), "0551020", 1),
        as_kafka_record(granted("alice", "0551020", UnitRole.CERTIFY), "0551020", 2),
    ]

    for record in records:
        await apply(record, session)
    await session.commit()

    assert await may(session, ALICE, Action.CERTIFY, "0551020")
