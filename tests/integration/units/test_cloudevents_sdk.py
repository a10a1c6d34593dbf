"""Acceptance: what the units service appends reaches Kafka as CloudEvents that a client no one here
wrote (the `cloudevents` PyPI SDK, Kafka binding) decodes, and that the kernel's authorization
projection, folding the SDK's decoding, answers scope questions right for a sample of users.

The events come from the service's own code: the seed imports a mixed slice of the real list
(units and template locations), the handlers grant roles; the kernel's `OutboxRelay` publishes
them to a topic unique to this run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from cloudevents.v1.kafka import KafkaMessage, from_binary
from sqlalchemy.ext.asyncio import AsyncSession

from shared import authz
from shared.auth import Principal
from shared.authz import Action
from shared.db import create_engine, session_factory
from shared.events.envelope import RecordedEvent
from shared.events.units import GlobalRole, UnitRole
from shared.eventstore import AppendContext, EventStore
from shared.hashchain import verify
from shared.migrate import upgrade
from shared.outbox import OutboxRelay
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.units.import_kit import UnitsDatabase, units_database, write_slice
from units import handlers
from units.commands import GrantGlobalRole, GrantRole
from units.seed import HOLDING_NODE_CODE, SEED_ACTOR, seed

pytestmark = pytest.mark.infra

CONTEXT = AppendContext(actor=SEED_ACTOR)


async def publish(db: UnitsDatabase, topic: str, bootstrap: str) -> None:
    """Run the kernel's relay until the outbox is empty."""
    relay = OutboxRelay(db.url, topic=topic, bootstrap_servers=bootstrap, batch_size=500)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(600):  # polls for at most a minute
            if relay.published >= await db.store.last_position():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the relay did not publish the outbox within a minute")
    finally:
        stop.set()
        await task


async def consume_with_sdk(topic: str, bootstrap: str, expected: int) -> list[Any]:
    """Read every record of `topic` and decode it with the CloudEvents SDK's Kafka binding."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    decoded: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(decoded) < expected:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for record in records:
                        message = KafkaMessage(
                            headers=dict(record.headers), key=record.key, value=record.value
                        )
                        decoded.append((record.key, from_binary(message)))
    finally:
        await consumer.stop()
    return decoded


def as_recorded(event: Any) -> RecordedEvent:
    """Turn the SDK's event into ours through the structured form: attributes plus data."""
    document = dict(event.get_attributes())
    document["data"] = event.get_data()
    return RecordedEvent.from_cloudevent(document)


async def grant_sample(db: UnitsDatabase, directorate: str, school: str, other: str) -> None:
    """Grant the sample users their roles through the service's handlers."""
    grants = [
        GrantRole("dir-admin", directorate, UnitRole.MANAGE, is_recursive=True),
        GrantRole("teacher", school, UnitRole.ENTRY),
        GrantRole("head", other, UnitRole.CERTIFY),
    ]
    for command in grants:
        await handlers.grant_role(command, store=db.store, clock=db.clock, context=CONTEXT)
    await handlers.grant_global_role(
        GrantGlobalRole("auditor-1", GlobalRole.AUDITOR),
        store=db.store,
        clock=db.clock,
        context=CONTEXT,
        grantor_roles=frozenset({GlobalRole.MINISTRY_ADMIN}),
    )


async def test_units_events_decode_with_the_cloudevents_sdk_and_fold_into_right_answers(
    fresh_database: DatabaseFactory,
    unique_topic: TopicFactory,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "slice.csv"
    picked = write_slice(path)
    rows = [row for kind in picked.values() for row in kind]
    by_directorate = Counter(row["directorate_code"] for row in rows if row["directorate_code"])
    directorate = by_directorate.most_common(1)[0][0]
    kindergarten = picked["ΝΗΠΙΑΓΩΓΕΙΟ"][0]["registry_code"]
    topic = await unique_topic("units-events-ce", partitions=6)

    async with units_database(fresh_database("units_cloudevents")) as db:
        report = await seed(engine=db.engine, store=db.store, clock=db.clock, file=path)
        assert report.summary.to_json()["created"] > 250
        refused = {error.registry_code for error in report.errors}
        inside = sorted(
            r["registry_code"]
            for r in rows
            if r["directorate_code"] == directorate and r["registry_code"] not in refused
        )
        outside = sorted(
            r["registry_code"]
            for r in rows
            if r["directorate_code"] not in ("", directorate) and r["registry_code"] not in refused
        )
        assert len(inside) >= 2
        assert outside
        await grant_sample(db, directorate, inside[0], inside[1])
        stored = await _all_events(db.store)
        await publish(db, topic, kafka_bootstrap)

    decoded = await consume_with_sdk(topic, kafka_bootstrap, len(stored))

    # The SDK reads every record as a CloudEvents 1.0 event with our attributes and extensions.
    assert len(decoded) == len(stored)
    by_id = {str(event.event_id): event for event in stored}
    for key, event in decoded:
        attributes = event.get_attributes()
        assert attributes["specversion"] == "1.0"
        assert attributes["datacontenttype"] == "application/json"
        assert attributes["source"] == "/ictcadastre/units"
        assert key.decode() == attributes["subject"]
        original = by_id[attributes["id"]]
        assert attributes["type"] == original.type
        assert int(attributes["streamversion"]) == original.version
        assert attributes["hash"] == original.hash
        assert event.get_data() == original.data
    recorded = sorted((as_recorded(e) for _, e in decoded), key=lambda e: e.position)
    assert verify(recorded) == []  # the hash chains hold after the SDK's decoding
    assert {e.type for e in recorded} >= {"UnitRegistered", "LocationAdded", "RoleGranted"}

    # Fold the SDK-decoded events into the kernel's authorization projection (another database,
    # as another service would) and ask it scope questions.
    authz_url = fresh_database("units_cloudevents_authz")
    upgrade(authz_url)
    engine = create_engine(authz_url, pool_size=2)
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            for event in recorded:
                await authz.apply(event, session)
        async with sessions() as session:
            await _assert_scope(session, directorate, inside, outside, kindergarten)
    finally:
        await engine.dispose()


async def _all_events(store: EventStore) -> list[RecordedEvent]:
    return [event async for event in store.iterate()]


async def _assert_scope(
    session: AsyncSession,
    directorate: str,
    inside: list[str],
    outside: list[str],
    kindergarten: str,
) -> None:
    admin, teacher = Principal("dir-admin"), Principal("teacher")
    head, auditor, nobody = Principal("head"), Principal("auditor-1"), Principal("nobody")
    school, other = inside[0], inside[1]

    # A recursive manage grant on a directorate covers it and every school below it, no more.
    for unit in [directorate, *inside]:
        assert await authz.may(session, admin, Action.MANAGE_EQUIPMENT, unit), unit
        assert await authz.may(session, admin, Action.GRANT_ROLES, unit), unit
    for unit in [outside[0], kindergarten, HOLDING_NODE_CODE]:
        assert not await authz.may(session, admin, Action.MANAGE_EQUIPMENT, unit), unit
    reached = await authz.units_user_may_act_on(session, "dir-admin", UnitRole.MANAGE)
    assert reached == sorted([directorate, *inside])

    # Plain grants cover their unit only, and only for their role.
    assert await authz.may(session, teacher, Action.RECORD_EQUIPMENT, school)
    assert not await authz.may(session, teacher, Action.MANAGE_EQUIPMENT, school)
    assert not await authz.may(session, teacher, Action.RECORD_EQUIPMENT, other)
    assert await authz.may(session, head, Action.CERTIFY, other)
    assert not await authz.may(session, head, Action.CERTIFY, school)
    assert await authz.units_user_may_act_on(session, "teacher", UnitRole.ENTRY) == [school]

    # A global auditor reads everything and changes nothing; a stranger does nothing.
    for unit in [school, outside[0], kindergarten]:
        assert await authz.may(session, auditor, Action.READ, unit)
        assert not await authz.may(session, auditor, Action.RECORD_EQUIPMENT, unit)
        assert not await authz.may(session, nobody, Action.READ, unit)
