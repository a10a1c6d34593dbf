"""A poison event does not stop delivery for the other bodies.

Event level: three poison records land on the equipment topic between valid changes of other
bodies: bytes that are not JSON, a well-formed record of an unknown event type, and an event whose
`apply` raises (a status change on a stream whose id is not an item id). Each goes to the
projection's dead-letter topic `registry-sync.view.dlq` with its reason, and every other body's
table reaches the receiver.

Delivery level: a body whose table the receiver refuses (422: an acquisition year before 1900,
which the contract forbids) is parked at once with the refusal as its reason, while changes to the
other bodies, before and after, keep flowing; once the data is corrected an operator's resend
delivers it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events.equipment import Acquisition, ItemDetailsCorrected, ItemStatus, ItemStatusChanged
from tests.integration.registry_sync.kit import (
    SyncWorld,
    eventually,
    item,
    unit,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

GOOD = [f"05540{n:02d}" for n in range(1, 7)]
BAD = "0554009"
DLQ = "registry-sync.view.dlq"


async def publish_junk(bootstrap: str, topic: str) -> None:
    """Publish a record that is not JSON and one of an event type nobody knows."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, key=b"junk", value=b"\xff not json", headers=[("ce_type", b"ItemRegistered")]
        )
        await producer.send_and_wait(
            topic,
            key=b"alien",
            value=b"{}",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", str(uuid4()).encode()),
                ("ce_source", b"/ictcadastre/equipment"),
                ("ce_subject", b"alien"),
                ("ce_type", b"ItemTeleported"),
                ("ce_streamversion", b"1"),
                ("ce_time", b"2026-11-30T00:00:00.000000Z"),
            ],
        )
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, source_topic: str, *, expected: int) -> list[str]:
    """Return the dead-letter reasons of records that came from `source_topic` (bounded wait)."""
    consumer = AIOKafkaConsumer(DLQ, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    reasons: list[str] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(reasons) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
                    if headers.get("dlq-topic") == source_topic:
                        reasons.append(headers["dlq-reason"])
    finally:
        await consumer.stop()
    return reasons


async def test_poison_events_are_dead_lettered_and_the_other_bodies_delivered(
    world: SyncWorld, receiver: Receiver, kafka_bootstrap: str
) -> None:
    for code in GOOD:
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
    for code in GOOD[:3]:
        laptop = item(code, "laptop", "Acer", "TravelMate P2", year=2021)
        await world.emit(world.equipment, str(laptop.item_id), [laptop])
    await publish_junk(kafka_bootstrap, world.settings.equipment_topic)
    stray = uuid4()
    await world.emit(world.equipment, "not-an-item-id", [
        ItemStatusChanged(item_id=stray, unit_id=GOOD[0], from_status=ItemStatus.IN_USE,
                          to_status=ItemStatus.OUT_OF_ORDER, reason="?",
                          performed_on=date(2026, 11, 20)),
    ])  # fmt: skip
    for code in GOOD:
        printer = item(code, "printer", "Kyocera", "ECOSYS P2040dn", year=2022)
        await world.emit(world.equipment, str(printer.item_id), [printer])

    reasons = await dead_letters(kafka_bootstrap, world.settings.equipment_topic, expected=3)
    assert len(reasons) == 3, reasons
    assert any("undecodable" in r and "not JSON" in r for r in reasons), reasons
    assert any("undecodable" in r and "ItemTeleported" in r for r in reasons), reasons
    assert any("apply failed" in r for r in reasons), reasons
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, GOOD)
    for code in GOOD:
        held = receiver.body(code)
        assert held is not None
        expected = 2 if code in GOOD[:3] else 1
        assert sum(row["quantity"] for row in held["rows"]) == expected, code


async def test_a_body_the_receiver_refuses_is_parked_while_the_others_flow(
    world: SyncWorld, receiver: Receiver
) -> None:
    for code in [*GOOD, BAD]:
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
    await world.settle()
    # A typo in a date: acquired in 1850. The contract refuses years before 1900 (422).
    relic = item(BAD, "desktop", "IBM", "PC 5150", year=1850)
    await world.emit(world.equipment, str(relic.item_id), [relic])
    for code in GOOD:
        laptop = item(code, "laptop", "Asus", "ExpertBook B1", year=2023)
        await world.emit(world.equipment, str(laptop.item_id), [laptop])
    await world.settle(ignore_parked=True)

    status = (await world.client.get(f"/registry/deliveries/{BAD}", headers=world.token())).json()
    assert status["state"] == "parked", status
    assert "refused by the receiver" in status["parked_reason"], status
    assert "422" in status["parked_reason"], status
    assert status["attempts"] == 1, status  # a refusal is never retried
    held_bad = receiver.body(BAD)
    assert held_bad is not None  # its first (empty) table went through before the relic
    assert all(row["acquisition_year"] != 1850 for row in held_bad["rows"])
    parked = (
        await world.client.get("/registry/deliveries", params={"state": "parked"},
                               headers=world.token())
    ).json()  # fmt: skip
    assert [entry["body_code"] for entry in parked["items"]] == [BAD]
    # Later changes of the other bodies keep flowing past the parked one.
    for code in GOOD:
        tablet = item(code, "tablet", "Lenovo", "Tab M10", year=2024)
        await world.emit(world.equipment, str(tablet.item_id), [tablet])
    await world.settle(ignore_parked=True)
    await world.assert_receiver_holds_our_view(receiver, GOOD)

    # The date is corrected; the body stays parked until an operator resends it.
    await world.emit(world.equipment, str(relic.item_id), [
        ItemDetailsCorrected(item_id=relic.item_id, unit_id=BAD, reason="λάθος έτος",
                             performed_on=date(2026, 11, 25),
                             acquisition=Acquisition(acquired_on=date(1985, 3, 1))),
    ])  # fmt: skip
    await world.settle_projection()

    async def still_parked() -> bool:
        row = await world.ledger_row(BAD)
        return row.parked_at is not None and row.wanted_seq > row.built_seq

    await eventually(still_parked, timeout_s=30, what="the correction to wait behind the park")
    answer = await world.client.post(f"/registry/deliveries/{BAD}/resend", headers=world.token())
    assert answer.status_code == 202, answer.text
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, [*GOOD, BAD])
    held_bad = receiver.body(BAD)
    assert held_bad is not None
    assert [(r["category_code"], r["acquisition_year"]) for r in held_bad["rows"]] == [
        ("DESKTOP", 1985)
    ]
