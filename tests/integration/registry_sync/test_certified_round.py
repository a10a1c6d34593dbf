"""A certified round: when a campaign closes, every body is pushed once more, a certified body with
its table as of the certification's `covers_position` (basis "certified") and an uncertified one
with its live table (basis "live"); what changed since the certification follows at once as a live
version, and later changes go out live again.

An ad-hoc campaign is opened (CampaignOpened) and closed (CampaignClosed) on the compliance topic;
one body certified its inventory (InventoryCertified, covering a store position) inside the
campaign, after which its items changed. The expected tables are written out by hand.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from registry_sync.worker import close_windows_once
from shared.clock import FixedClock
from shared.events.compliance import CampaignClosed, CampaignOpened, ScopeKind
from shared.events.equipment import InventoryCertified, ItemStatus, ItemStatusChanged, ItemWithdrawn
from tests.integration.registry_sync.kit import (
    SyncWorld,
    assert_no_duplicate_application,
    item,
    now,
    unit,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

CERTIFIED, UNCERTIFIED = "0556001", "0556002"
CAMPAIGN = "adhoc-rs-certified-round"


def table(held: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    assert held is not None
    return [
        (r["category_code"], r["manufacturer"], r["model"], r["acquisition_year"],
         r["in_operation"], r["quantity"])
        for r in held["rows"]
    ]  # fmt: skip


def stored_push(receiver: Receiver, code: str, version: int | None = None) -> dict[str, Any]:
    """Return a whole push the receiver applied for `code`: `version`, else the one it holds."""
    connection = sqlite3.connect(receiver.db_path, timeout=10.0)
    try:
        if version is None:
            query = "SELECT push FROM bodies WHERE body_code = ?"
            (text,) = connection.execute(query, (code,)).fetchone()
        else:
            query = "SELECT push FROM applied_pushes WHERE idempotency_key = ?"
            (text,) = connection.execute(query, (f"{code}:{version}",)).fetchone()
    finally:
        connection.close()
    push: dict[str, Any] = json.loads(text)
    return push


async def test_a_closed_campaign_sends_certified_and_live_tables(
    world: SyncWorld, receiver: Receiver
) -> None:
    opened_at = now() - timedelta(days=1)
    await world.emit(world.compliance, f"campaign:{CAMPAIGN}", [
        CampaignOpened(campaign_id=CAMPAIGN, title="Έκτακτη απογραφή", opens_at=opened_at,
                       deadline_at=now() + timedelta(days=10),
                       deadline_on=(now() + timedelta(days=9)).date(), scope_kind=ScopeKind.ALL),
    ])  # fmt: skip
    for code in (CERTIFIED, UNCERTIFIED):
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
    laptops = [item(CERTIFIED, "laptop", "HP", "ProBook 450 G9", year=2023) for _ in range(2)]
    printer = item(CERTIFIED, "printer", "Brother", "HL-L2350DW", year=2021)
    other = item(UNCERTIFIED, "laptop", "Dell", "Latitude 3540", year=2024)
    for registered in [*laptops, printer, other]:
        covered = await world.emit(world.equipment, str(registered.item_id), [registered])
    # The unit certifies what it holds now: its items up to store position `covered`.
    certification_id = uuid4()
    certified_at = now()
    await world.emit(world.equipment, f"certification:{CERTIFIED}", [
        InventoryCertified(unit_id=CERTIFIED, certification_id=certification_id,
                           certified_at=certified_at, certified_on=certified_at.date(),
                           signer_id="director-1", item_count=3, content_hash="ab" * 32,
                           covers_position=covered),
    ])  # fmt: skip
    # Later changes, after the certification: a tablet, a broken printer, a withdrawn laptop.
    tablet = item(CERTIFIED, "tablet", "Apple", "iPad 10", year=2025)
    scanner = item(UNCERTIFIED, "scanner", "Epson", "DS-530", year=2023)
    await world.emit(world.equipment, str(tablet.item_id), [tablet])
    await world.emit(world.equipment, str(scanner.item_id), [scanner])
    await world.emit(world.equipment, str(printer.item_id), [
        ItemStatusChanged(item_id=printer.item_id, unit_id=CERTIFIED,
                          from_status=ItemStatus.IN_USE, to_status=ItemStatus.OUT_OF_ORDER,
                          reason="χαλασμένο", performed_on=date(2026, 11, 28)),
    ])  # fmt: skip
    await world.emit(world.equipment, str(laptops[0].item_id), [
        ItemWithdrawn(item_id=laptops[0].item_id, unit_id=CERTIFIED,
                      from_status=ItemStatus.IN_USE, decision_reference="Πράξη 3/2026",
                      decided_on=date(2026, 11, 28), performed_on=date(2026, 11, 28)),
    ])  # fmt: skip
    await world.settle()
    live_certified = [
        ("LAPTOP", "HP", "ProBook 450 G9", 2023, True, 1),
        ("PRINTER", "BROTHER", "HL-L2350DW", 2021, False, 1),
        ("TABLET", "APPLE", "iPad 10", 2025, True, 1),
    ]
    live_uncertified = [
        ("LAPTOP", "DELL", "Latitude 3540", 2024, True, 1),
        ("SCANNER", "EPSON", "DS-530", 2023, True, 1),
    ]
    assert table(receiver.body(CERTIFIED)) == live_certified
    assert {receiver.body(c)["basis"] for c in (CERTIFIED, UNCERTIFIED)} == {"live"}  # type: ignore[index]
    before = {c: (await world.ledger_row(c)).acked_version for c in (CERTIFIED, UNCERTIFIED)}

    await world.emit(world.compliance, f"campaign:{CAMPAIGN}", [
        CampaignClosed(campaign_id=CAMPAIGN, closed_at=now()),
    ])  # fmt: skip
    await world.settle()
    certified = stored_push(receiver, CERTIFIED, before[CERTIFIED] + 1)
    assert certified["basis"] == "certified"
    assert table(certified) == [  # as of the certification: no tablet, printer working, 2 laptops
        ("LAPTOP", "HP", "ProBook 450 G9", 2023, True, 2),
        ("PRINTER", "BROTHER", "HL-L2350DW", 2021, True, 1),
    ]
    assert certified["certification"]["certification_id"] == str(certification_id)
    assert certified["certification"]["content_hash"] == "ab" * 32
    assert certified["certification"]["item_count"] == 3
    # What changed since the certification still reaches the registry, as the next version.
    held = receiver.body(CERTIFIED)
    assert held is not None
    assert held["registry_version"] == before[CERTIFIED] + 2
    assert held["basis"] == "live"
    assert table(held) == live_certified
    held_other = receiver.body(UNCERTIFIED)
    assert held_other is not None
    assert held_other["basis"] == "live"
    assert held_other["registry_version"] == before[UNCERTIFIED] + 1  # pushed in the round too
    assert table(held_other) == live_uncertified
    assert stored_push(receiver, UNCERTIFIED)["certification"] is None

    # The next change goes out live again, with everything since.
    router = item(CERTIFIED, "modem_router", "TP-Link", "Archer C6", year=2026)
    await world.emit(world.equipment, str(router.item_id), [router])
    await world.settle()
    held = receiver.body(CERTIFIED)
    assert held is not None
    assert held["basis"] == "live"
    assert table(held) == sorted(
        [*live_certified, ("NETWORK", "TP-LINK", "Archer C6", 2026, True, 1)]
    )
    await world.assert_receiver_holds_our_view(receiver, [CERTIFIED, UNCERTIFIED])
    assert_no_duplicate_application(receiver)


async def test_a_regular_window_closing_marks_one_round_for_every_body(
    world: SyncWorld, receiver: Receiver
) -> None:
    for code in (CERTIFIED, UNCERTIFIED):
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
    await world.settle()
    before = {c: (await world.ledger_row(c)).acked_version for c in (CERTIFIED, UNCERTIFIED)}
    # One second after the December 2026 window's deadline (1 January 2027, 00:00 Athens).
    after_deadline = FixedClock(datetime(2026, 12, 31, 22, 0, 1, tzinfo=UTC))

    assert await close_windows_once(world.engine, after_deadline) is True
    assert await close_windows_once(world.engine, after_deadline) is False  # once per window
    await world.settle()

    for code in (CERTIFIED, UNCERTIFIED):
        held = receiver.body(code)
        assert held is not None
        assert held["registry_version"] == before[code] + 1
        assert held["basis"] == "live"  # neither certified inside the December window
    assert_no_duplicate_application(receiver)
