"""Reconciliation detects a body whose data at the receiver was altered behind our back (or lost)
and repairs it; and the operations API around it (backlog, deliveries, resend, metrics, roles).

The reconciliation is asked for through the API (`POST /registry/reconciliations`, as an operator
would) and run the way the worker's housekeeping loop runs it (`reconcile.run_requested` against
the receiver's listing). Altering goes through the receiver's admin port (`tamper`: rows replaced,
version and stored hash kept); losing a body is a row deleted from the receiver's own SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any
from uuid import uuid4

import httpx
import pytest

from registry_sync.reconcile import run_requested
from shared.clock import SystemClock
from shared.events.units import GlobalRole
from tests.integration.registry_sync.kit import (
    SyncWorld,
    eventually,
    item,
    now,
    unit,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

CODES = [f"05550{n:02d}" for n in range(1, 6)]
ALTERED, LOST = CODES[1], CODES[3]


async def deliver_some(world: SyncWorld) -> None:
    for code in CODES:
        await world.emit(world.units, f"unit:{code}", [unit(code, f"ΣΧΟΛΕΙΟ {code}")])
        for category, manufacturer, model in (
            ("laptop", "HP", "ProBook 450 G9"),
            ("laptop", "HP", "ProBook 450 G9"),
            ("printer", "Canon", "i-SENSYS LBP233dw"),
        ):
            registered = item(code, category, manufacturer, model, year=2022)
            await world.emit(world.equipment, str(registered.item_id), [registered])
    await world.settle()


async def reconcile_via_api(world: SyncWorld, receiver: Receiver) -> dict[str, Any]:
    """Ask for a run through the API, run it as the worker does, return what the API reports."""
    asked = await world.client.post("/registry/reconciliations", headers=world.token())
    assert asked.status_code == 202, asked.text
    location = asked.headers["Location"]
    pending = (await world.client.get(location, headers=world.token())).json()
    assert pending["status"] == "requested", pending
    async with httpx.AsyncClient(base_url=receiver.url, timeout=10.0) as client:
        ran = await run_requested(world.engine, client, clock=SystemClock())
    assert str(ran) == asked.json()["id"]
    answer = await world.client.get(location, headers=world.token())
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def lose(receiver: Receiver, code: str) -> None:
    """Delete a body's held table from the receiver's own storage (a registry losing data)."""
    connection = sqlite3.connect(receiver.db_path, timeout=10.0)
    try:
        with connection:
            connection.execute("DELETE FROM bodies WHERE body_code = ?", (code,))
    finally:
        connection.close()


async def test_reconciliation_finds_altered_and_lost_bodies_and_repairs_them(
    world: SyncWorld, receiver: Receiver
) -> None:
    await deliver_some(world)
    clean = await reconcile_via_api(world, receiver)
    assert (clean["status"], clean["checked"], clean["mismatched"], clean["missing"]) == (
        "done", len(CODES), 0, 0,
    )  # fmt: skip
    before = {code: (await world.ledger_row(code)).acked_version for code in CODES}
    held = receiver.body(ALTERED)
    assert held is not None
    altered_rows = [dict(row, quantity=row["quantity"] + 5) for row in held["rows"]]
    receiver.tamper(ALTERED, altered_rows)
    lose(receiver, LOST)
    assert receiver.body(LOST) is None
    tampered = receiver.body(ALTERED)
    assert tampered is not None
    assert tampered["registry_version"] == before[ALTERED]  # the version does not tell

    report = await reconcile_via_api(world, receiver)
    assert report["status"] == "done", report
    assert report["mismatched"] == 1, report
    assert report["missing"] == 1, report
    assert report["checked"] == len(CODES), report
    assert report["error"] is None, report
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, CODES)
    for code in CODES:
        version = (await world.ledger_row(code)).acked_version
        if code in (ALTERED, LOST):
            assert version > before[code], code  # repaired by a newer version
        else:
            assert version == before[code], code  # the others were left alone
    again = await reconcile_via_api(world, receiver)
    assert (again["mismatched"], again["missing"]) == (0, 0), again


async def test_a_reconciliation_while_the_receiver_is_down_fails_and_says_why(
    world: SyncWorld, receiver: Receiver
) -> None:
    await deliver_some(world)
    await asyncio.to_thread(receiver.set_faults, "down")
    report = await reconcile_via_api(world, receiver)
    assert report["status"] == "failed", report
    assert report["error"], report
    await asyncio.to_thread(receiver.set_faults, "ok")
    assert (await reconcile_via_api(world, receiver))["status"] == "done"


async def metric_values(world: SyncWorld) -> dict[str, str]:
    """Return the samples of GET /metrics (Prometheus text) by metric name."""
    metrics = await world.client.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    assert "# TYPE ictc_registry_backlog gauge" in metrics.text
    return dict(
        line.rsplit(" ", 1) for line in metrics.text.splitlines() if not line.startswith("#")
    )


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["status"] == status, body
    return body


async def test_operations_api_backlog_metrics_parking_resend(
    world: SyncWorld, receiver: Receiver
) -> None:
    await deliver_some(world)
    headers = world.token()
    backlog = (await world.client.get("/registry/backlog", headers=headers)).json()
    assert backlog["bodies"] == len(CODES), backlog
    assert backlog["acknowledged"] == len(CODES), backlog
    assert (backlog["pending"], backlog["in_flight"], backlog["parked"]) == (0, 0, 0), backlog
    assert backlog["oldest_pending_age_s"] == 0.0, backlog

    # The receiver fails: a change waits and is retried; the backlog and metrics show it.
    await asyncio.to_thread(receiver.set_faults, "fail", status=503)
    code = CODES[0]
    extra = item(code, "scanner", "Epson", "DS-530", year=2023)
    await world.emit(world.equipment, str(extra.item_id), [extra])
    await world.settle_projection()

    async def failing() -> bool:
        figures = (await world.client.get("/registry/backlog", headers=headers)).json()
        return bool(figures["pending"] == 1 and figures["failures_total"] >= 2)

    await eventually(failing, timeout_s=30, what="the backlog to show a failing delivery")
    status = (await world.client.get(f"/registry/deliveries/{code}", headers=headers)).json()
    assert status["state"] == "pending", status
    assert status["in_flight_version"] == status["last_version"], status
    assert "503" in status["last_error"], status
    assert status["pending_age_s"] > 0, status
    gauges = await metric_values(world)
    assert gauges["ictc_registry_backlog"] == "1", gauges
    assert gauges["ictc_registry_in_flight"] == "1", gauges
    assert gauges["ictc_registry_parked"] == "0", gauges
    assert float(gauges["ictc_registry_oldest_pending_seconds"]) > 0, gauges
    assert int(gauges["ictc_registry_failures_total"]) >= 2, gauges
    pending = (
        await world.client.get("/registry/deliveries", params={"state": "pending"},
                               headers=headers)
    ).json()  # fmt: skip
    assert [entry["body_code"] for entry in pending["items"]] == [code]

    # The receiver refuses the content (422): parked at once, listed as parked.
    await asyncio.to_thread(receiver.set_faults, "fail", status=422)

    async def parked() -> bool:
        return (await world.ledger_row(code)).parked_at is not None

    await eventually(parked, timeout_s=30, what="the refused delivery to be parked")
    await asyncio.to_thread(receiver.set_faults, "ok")
    listed = (
        await world.client.get("/registry/deliveries", params={"state": "parked"},
                               headers=headers)
    ).json()  # fmt: skip
    assert [entry["body_code"] for entry in listed["items"]] == [code]
    assert "422" in listed["items"][0]["parked_reason"]
    assert (await world.client.get("/registry/backlog", headers=headers)).json()["parked"] == 1
    # Resend the parked ones: delivered.
    resent = await world.client.post(
        "/registry/deliveries/resend", params={"state": "parked"}, headers=headers
    )
    assert resent.status_code == 202, resent.text
    assert resent.json() == {"resent": 1}
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, CODES)
    # Resend all: every body gets one newer version, and the receiver still holds our view.
    before = {c: (await world.ledger_row(c)).acked_version for c in CODES}
    resent = await world.client.post("/registry/deliveries/resend", headers=headers)
    assert resent.json() == {"resent": len(CODES)}
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, CODES)
    for c in CODES:
        assert (await world.ledger_row(c)).acked_version == before[c] + 1, c
    paged = (
        await world.client.get("/registry/deliveries", params={"limit": 2}, headers=headers)
    ).json()
    assert [e["body_code"] for e in paged["items"]] == CODES[:2]
    assert paged["next_after"] == CODES[1]


async def test_operations_api_roles_and_unknown_bodies(
    world: SyncWorld, receiver: Receiver
) -> None:
    await deliver_some(world)
    headers = world.token()
    code = CODES[0]
    # Roles: a reader may read but not act; nobody without a role may read; no token, no entry.
    nobody = {"Authorization": f"Bearer {world.issuer.mint('nobody', now=now())}"}
    auditor = world.token("auditor-1", GlobalRole.AUDITOR)
    for path in ("/registry/backlog", f"/registry/deliveries/{code}", "/registry/deliveries",
                 f"/registry/bodies/{code}/table"):  # fmt: skip
        problem(await world.client.get(path, headers=nobody), 403)
        assert (await world.client.get(path, headers=auditor)).status_code == 200, path
    problem(await world.client.post(f"/registry/deliveries/{code}/resend", headers=auditor), 403)
    problem(await world.client.post("/registry/deliveries/resend", headers=auditor), 403)
    problem(await world.client.post("/registry/reconciliations", headers=auditor), 403)
    assert (await world.client.get("/registry/backlog")).status_code == 401
    # An unknown body: 404 problem+json naming it.
    unknown = "0559999"
    for path in (f"/registry/deliveries/{unknown}", f"/registry/bodies/{unknown}/table"):
        assert unknown in problem(await world.client.get(path, headers=headers), 404)["detail"]
    problem(await world.client.post(f"/registry/deliveries/{unknown}/resend", headers=headers), 404)
    problem(await world.client.get(f"/registry/reconciliations/{uuid4()}", headers=headers), 404)
