"""The equipment API over HTTP with tokens, on real PostgreSQL and Kafka, its worker running.

Each command and query; bad input is a 4xx problem naming the field with nothing appended; a
command on a missing item or unit is 404; a stale If-Match is 412; a retry with the same
Idempotency-Key (or the same client-chosen item id) appends nothing; authority comes from grants
(entry registers and corrects, manage moves and transfers, recursive grants reach the subtree,
auditors read everything, nobody else writes).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from openpyxl import load_workbook
from sqlalchemy import text

from equipment import access, handlers
from equipment.domain import asset_number
from shared.events.units import GlobalRole, UnitRole
from shared.hashchain import verify
from tests.conftest import DatabaseFactory
from tests.conftest import _create_topics as create_topics
from tests.integration.equipment.kit import PARTITIONS, Api, running_equipment_service

pytestmark = pytest.mark.infra

DIRECTORATE = "0551000"
SCHOOL = "0551010"
OTHER = "0551020"
FOREIGN = "0552010"  # a school under another directorate
LAB, OFFICE, OTHER_LAB = f"{SCHOOL}-L1", f"{SCHOOL}-L2", f"{OTHER}-L1"
PROBLEM = "application/problem+json"
DAY = "2026-01-15"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    url = fresh_database("equipment_api")
    units_url = fresh_database("equipment_api_units")
    topics = (f"units-for-equipment.{run_id}", f"equipment-api.{run_id}")
    await create_topics(kafka_bootstrap, list(topics), PARTITIONS)
    _created_topics.extend(topics)
    issuer_dir: Path = tmp_path_factory.mktemp("issuer")
    async with running_equipment_service(
        url, units_url, kafka_bootstrap, topics, issuer_dir
    ) as client:
        await client.unit(DIRECTORATE, None, ["Γραφείο"])
        await client.unit(SCHOOL, DIRECTORATE, ["Εργαστήριο Πληροφορικής", "Γραφείο Διεύθυνσης"])
        await client.unit(OTHER, DIRECTORATE, ["Εργαστήριο"])
        await client.unit(FOREIGN, None, ["Εργαστήριο"])
        await client.grant("teacher", SCHOOL, UnitRole.ENTRY)
        await client.grant("manager", SCHOOL, UnitRole.MANAGE)
        await client.grant("other-manager", OTHER, UnitRole.MANAGE)
        await client.grant("director", DIRECTORATE, UnitRole.MANAGE, is_recursive=True)
        yield client


async def product(api: Api, category_id: str, model: str) -> str:
    answer = await api.write(
        "POST",
        "/products",
        {"category_id": category_id, "manufacturer": "Lenovo", "model": model},
    )
    assert answer.status_code == 201, answer.text
    await api.seen(answer.json()["stream_id"], answer.json()["position"])
    return str(answer.json()["stream_id"]).removeprefix("product:")


async def register(
    api: Api, product_id: str, *, serial: str | None, user: str = "teacher", **more: Any
) -> dict[str, Any]:
    body = {
        "unit_id": SCHOOL,
        "product_id": product_id,
        "location_id": LAB,
        "serial_number": serial,
        "performed_on": DAY,
        **more,
    }
    answer = await api.write("POST", "/items", body, user=api.token(user))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    await api.seen(result["stream_id"], result["position"])
    return result


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def laptop(api: Api) -> str:
    return await product(api, "laptop", "ThinkPad L14")


def problem_fields(answer: Any) -> list[str]:
    assert answer.headers["content-type"].startswith(PROBLEM), answer.text
    return [error["field"] for error in answer.json().get("errors", [])]


async def test_catalogue_lists_categories_with_greek_labels_and_bundle_rules(api: Api) -> None:
    answer = await api.read("/categories", user=api.token("teacher"))
    assert answer.status_code == 200
    categories = {c["category_id"]: c for c in answer.json()}
    assert categories["workstation"]["is_bundle"] is True
    assert {"category_id": "monitor", "minimum": 1, "maximum": 2} in categories["workstation"][
        "parts"
    ]
    assert categories["laptop"]["label_el"] == "Φορητός υπολογιστής"


async def test_register_then_read_the_item_with_its_allocated_asset_number(
    api: Api, laptop: str
) -> None:
    item_id = str(uuid4())
    body = {
        "item_id": item_id,
        "unit_id": SCHOOL,
        "product_id": laptop,
        "location_id": LAB,
        "serial_number": f"pf-{item_id[:8]}",
        "acquisition": {"acquired_on": "2019-09-02", "cost_eur": "612.40", "contract": "12/2019"},
        "performed_on": DAY,
    }
    first = await api.write("POST", "/items", body, user=api.token("teacher"))
    assert first.status_code == 201, first.text
    assert first.headers["ETag"] == '"1"'
    again = await api.write("POST", "/items", body, user=api.token("teacher"))
    assert (again.status_code, again.json()) == (201, first.json())
    other = await api.write(
        "POST", "/items", {**body, "location_id": OFFICE}, user=api.token("teacher")
    )
    assert other.status_code == 409
    read = await api.read(
        f"/items/{item_id}", user=api.token("teacher"), min_position=first.json()["position"]
    )
    assert read.status_code == 200, read.text
    item = read.json()
    assert item["serial_number"] == f"PF{item_id[:8].upper()}"
    assert item["asset_number"].startswith(f"{SCHOOL}-")
    assert item["cost_eur"] == "612.40"
    assert read.headers["ETag"] == '"1"'


async def test_bad_input_is_a_problem_naming_the_field_and_appends_nothing(
    api: Api, laptop: str
) -> None:
    before = await api.store.last_position()
    missing = await api.write(
        "POST", "/items", {"unit_id": SCHOOL, "location_id": LAB}, user=api.token("teacher")
    )
    assert missing.status_code == 422
    assert "product_id" in problem_fields(missing)
    future = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": laptop, "location_id": LAB, "serial_number": "F1",
         "performed_on": "2999-01-01"},
        user=api.token("teacher"),
    )  # fmt: skip
    assert future.status_code == 422
    assert problem_fields(future) == ["performed_on"]
    nowhere = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": laptop, "location_id": OTHER_LAB, "serial_number": "F2"},
        user=api.token("teacher"),
    )
    assert nowhere.status_code == 422
    assert problem_fields(nowhere) == ["location_id"]
    no_serial = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": laptop, "location_id": LAB},
        user=api.token("teacher"),
    )
    assert no_serial.status_code == 422
    assert problem_fields(no_serial) == ["serial_number"]
    assert await api.store.last_position() == before


async def _last_asset_number(api: Api, unit_id: str) -> int:
    async with api.engine.connect() as connection:
        row = await connection.execute(
            text("SELECT last_number FROM equipment_asset_sequences WHERE unit_id = :u"),
            {"u": unit_id},
        )
        return int(row.scalar() or 0)


async def test_concurrent_registrations_take_consecutive_asset_numbers_and_refused_take_none(
    api: Api, laptop: str
) -> None:
    # The number is taken inside each registration's append (the counter row locked for that
    # statement only); the events are hashed by the database with it in place.
    before = await _last_asset_number(api, SCHOOL)
    marker = uuid4().hex[:6]
    results = await asyncio.gather(
        *(register(api, laptop, serial=f"AN{marker}{n}") for n in range(12))
    )
    numbers = set()
    for result in results:
        history = await api.store.load(result["stream_id"])
        assert verify(history) == []
        numbers.add(history[-1].data["asset_number"])
    assert numbers == {asset_number(SCHOOL, n) for n in range(before + 1, before + 13)}

    taken = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": laptop, "location_id": LAB,
         "serial_number": f"AN{marker}0", "performed_on": DAY},
        user=api.token("teacher"),
    )  # fmt: skip
    assert taken.status_code == 409
    assert await _last_asset_number(api, SCHOOL) == before + 12  # the refused one took none
    legacy = await register(api, laptop, serial=f"AN{marker}L", asset_number="ΠΑΛΙΟ-7")
    assert (await api.store.load(legacy["stream_id"]))[-1].data["asset_number"] == "ΠΑΛΙΟ-7"
    assert await _last_asset_number(api, SCHOOL) == before + 12


async def test_the_database_spells_asset_numbers_as_the_domain_does(api: Api) -> None:
    async with api.engine.connect() as connection, connection.begin() as transaction:
        await connection.execute(
            text(
                "INSERT INTO equipment_asset_sequences (unit_id, last_number) VALUES (:u, 999998)"
            ),
            {"u": "0999999"},
        )
        spelled = [
            (
                await connection.execute(text("SELECT equipment_next_asset_number('0999999')"))
            ).scalar()
            for _ in range(2)
        ]
        await transaction.rollback()
    assert spelled == [asset_number("0999999", 999_999), asset_number("0999999", 1_000_000)]
    async with api.engine.connect() as connection:
        first = await connection.execute(text("SELECT equipment_next_asset_number('0999998')"))
        assert first.scalar() == asset_number("0999998", 1)
        await connection.rollback()


def _words(sql: str) -> str:
    return " ".join(sql.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())


async def test_the_act_functions_run_the_checks_and_the_read_the_code_states(api: Api) -> None:
    # equipment_0003 froze access._CHECK and handlers.ACT_READ_SQL into SQL functions (plans kept
    # per session): a change of either text needs a new revision, and this test says so.
    check = access._CHECK
    for name in access.CHECK_PARAMETERS:
        check = check.replace(f"%({name})s", f"p_{name}")
    read = handlers.ACT_READ_SQL.replace("%s", "p_stream_ids", 1)
    read = read.replace("%s", "p_inventory_stream", 1)
    async with api.engine.connect() as connection:
        for function, body in (("equipment_act_check", check), ("equipment_act_read", read)):
            definition = await connection.execute(
                text("SELECT pg_get_functiondef(to_regproc(:f))"), {"f": function}
            )
            assert _words(body) in _words(str(definition.scalar())), function


async def test_a_serial_number_is_unique_per_manufacturer(api: Api, laptop: str) -> None:
    serial = f"DUP-{uuid4().hex[:6]}"
    await register(api, laptop, serial=serial)
    taken = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": laptop, "location_id": LAB,
         "serial_number": serial.lower().replace("-", " ")},
        user=api.token("teacher"),
    )  # fmt: skip
    assert taken.status_code == 409
    assert problem_fields(taken) == ["serial_number"]


async def test_missing_units_items_and_products_are_404(api: Api, laptop: str) -> None:
    unknown_unit = await api.write(
        "POST",
        "/items",
        {"unit_id": "0559999", "product_id": laptop, "location_id": LAB, "serial_number": "X"},
    )
    assert unknown_unit.status_code == 404
    moved = await api.write("POST", f"/items/{uuid4()}/moves", {"to_location_id": OFFICE})
    assert moved.status_code == 404
    unknown_product = await api.write(
        "POST",
        "/items",
        {"unit_id": SCHOOL, "product_id": str(uuid4()), "location_id": LAB, "serial_number": "Y"},
        user=api.token("teacher"),
    )
    assert unknown_product.status_code == 422
    assert problem_fields(unknown_product) == ["product_id"]
    assert (await api.read(f"/items/{uuid4()}")).status_code == 404


async def test_who_may_write_comes_from_grants(api: Api, laptop: str) -> None:
    body = {"unit_id": SCHOOL, "product_id": laptop, "location_id": LAB, "serial_number": "Z1"}
    assert (await api.client.post("/items", json=body)).status_code == 401
    assert (await api.write("POST", "/items", body, user=api.token("stranger"))).status_code == 403
    assert (await api.write("POST", "/items", body, user=api.token("manager"))).status_code == 403
    item = await register(api, laptop, serial=f"G-{uuid4().hex[:6]}")
    path = f"/items/{item['stream_id']}/moves"
    move = {"to_location_id": OFFICE, "performed_on": DAY}
    assert (await api.write("POST", path, move, user=api.token("teacher"))).status_code == 403
    assert (await api.write("POST", path, move, user=api.token("other-manager"))).status_code == 403
    assert (await api.write("POST", path, move, user=api.token("director"))).status_code == 200
    auditor = api.token("auditor", GlobalRole.AUDITOR)
    assert (await api.write("POST", path, move, user=auditor)).status_code == 403
    history = await api.read(f"/items/{item['stream_id']}/history", user=auditor)
    assert history.status_code == 200
    stranger = await api.read(f"/items/{item['stream_id']}/history", user=api.token("stranger"))
    assert stranger.status_code == 403


async def test_if_match_and_idempotency_keys(api: Api, laptop: str) -> None:
    item = await register(api, laptop, serial=f"M-{uuid4().hex[:6]}")
    path = f"/items/{item['stream_id']}"
    manager = api.token("manager")
    moved = await api.write(
        "POST", f"{path}/moves", {"to_location_id": OFFICE}, user=manager,
        headers={"If-Match": '"1"'},
    )  # fmt: skip
    assert (moved.status_code, moved.headers["ETag"]) == (200, '"2"')
    stale = await api.write(
        "POST", f"{path}/moves", {"to_location_id": LAB}, user=manager, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    before = await api.store.last_position()
    status = {"status": "under_repair", "reason": "δεν ανάβει"}
    key = {"Idempotency-Key": f"status-{uuid4()}"}
    first = await api.write("POST", f"{path}/status", status, user=manager, headers=key)
    second = await api.write("POST", f"{path}/status", status, user=manager, headers=key)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert await api.store.last_position() == first.json()["position"]
    assert first.json()["position"] > before


async def test_a_transfer_is_pending_for_both_units_then_belongs_to_the_destination(
    api: Api, laptop: str
) -> None:
    item = await register(api, laptop, serial=f"T-{uuid4().hex[:6]}")
    item_id = item["stream_id"]
    manager, other = api.token("manager"), api.token("other-manager")
    sent = await api.write(
        "POST", f"/items/{item_id}/transfer", {"to_unit_id": OTHER, "reason": "ανακατανομή"},
        user=manager,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    await api.seen(item_id, sent.json()["position"])
    for unit_id, side in ((SCHOOL, "outgoing"), (OTHER, "incoming")):
        pending = await api.read(f"/units/{unit_id}/transfers/pending")
        assert item_id in [row["item_id"] for row in pending.json()[side]]
        listing = await api.read(f"/units/{unit_id}/items", limit=500)
        assert item_id not in [row["item_id"] for row in listing.json()["items"]]
    refused = await api.write(
        "POST", f"/items/{item_id}/transfer/accept", {"to_location_id": OTHER_LAB}, user=manager
    )
    assert refused.status_code == 403
    wrong_place = await api.write(
        "POST", f"/items/{item_id}/transfer/accept", {"to_location_id": LAB}, user=other
    )
    assert wrong_place.status_code == 422
    assert problem_fields(wrong_place) == ["to_location_id"]
    accepted = await api.write(
        "POST", f"/items/{item_id}/transfer/accept", {"to_location_id": OTHER_LAB}, user=other
    )
    assert accepted.status_code == 200, accepted.text
    await api.seen(item_id, accepted.json()["position"])
    listing = await api.read(f"/units/{OTHER}/items", limit=500)
    assert item_id in [row["item_id"] for row in listing.json()["items"]]
    history = (await api.read(f"/items/{item_id}/history")).json()
    assert [entry["type"] for entry in history] == [
        "ItemRegistered",
        "ItemTransferDispatched",
        "ItemTransferAccepted",
    ]
    assert [entry["actor_id"] for entry in history] == ["teacher", "manager", "other-manager"]
    assert history[1]["changes"]["to_unit_id"] == OTHER


async def test_the_source_may_cancel_before_acceptance(api: Api, laptop: str) -> None:
    item = await register(api, laptop, serial=f"C-{uuid4().hex[:6]}")
    item_id = item["stream_id"]
    manager = api.token("manager")
    sent = await api.write(
        "POST", f"/items/{item_id}/transfer", {"to_unit_id": OTHER}, user=manager
    )
    assert sent.status_code == 200
    moved = await api.write("POST", f"/items/{item_id}/moves", {"to_location_id": OFFICE},
                            user=manager)  # fmt: skip
    assert moved.status_code == 409
    cancelled = await api.write(
        "POST", f"/items/{item_id}/transfer/cancel", {"reason": "λάθος"}, user=manager
    )
    assert cancelled.status_code == 200, cancelled.text
    await api.seen(item_id, cancelled.json()["position"])
    row = (await api.read(f"/items/{item_id}")).json()
    assert (row["inventory_unit_id"], row["transfer_id"]) == (SCHOOL, None)


async def test_a_workstation_is_flagged_until_its_parts_are_bundled(api: Api) -> None:
    workstation = await product(api, "workstation", "ThinkCentre M70")
    monitor = await product(api, "monitor", "T24i")
    cpu = await product(api, "cpu", "M70 tower")
    bundle = await register(api, workstation, serial=None)
    parts = [
        await register(api, monitor, serial=f"MON-{uuid4().hex[:6]}"),
        await register(api, cpu, serial=f"CPU-{uuid4().hex[:6]}"),
    ]
    bundle_id = bundle["stream_id"]
    assert (await api.read(f"/items/{bundle_id}")).json()["has_missing_parts"] is True
    manager = api.token("manager")
    for part in parts:
        added = await api.write(
            "POST", f"/items/{bundle_id}/parts", {"part_item_id": part["stream_id"]}, user=manager
        )
        assert added.status_code == 200, added.text
        await api.seen(bundle_id, added.json()["position"])
    row = (await api.read(f"/items/{bundle_id}")).json()
    assert row["has_missing_parts"] is False
    assert sorted(row["part_item_ids"]) == sorted(p["stream_id"] for p in parts)
    laptop_part = await register(api, cpu, serial=f"CPU-{uuid4().hex[:6]}")
    too_many = await api.write(
        "POST", f"/items/{bundle_id}/parts", {"part_item_id": laptop_part["stream_id"]},
        user=manager,
    )  # fmt: skip
    assert too_many.status_code == 409


async def test_listing_pages_by_cursor_filters_searches_and_counts(api: Api, laptop: str) -> None:
    printer = await product(api, "printer", "LaserJet")
    marker = uuid4().hex[:5].upper()
    for n in range(5):
        await register(
            api, printer, serial=f"Q{marker}{n}", asset_number=f"ΠΑΓΙΟ-{marker}-{n}",
        )  # fmt: skip
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "category_id": "printer"}
        if cursor:
            params["cursor"] = cursor
        page = await api.read(f"/units/{SCHOOL}/items", user=api.token("teacher"), **params)
        assert page.status_code == 200, page.text
        seen += [row["asset_number"] for row in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 5
    assert seen == sorted(seen, key=lambda text: text.encode())
    found = await api.read(f"/units/{SCHOOL}/items", q=f"παγιο-{marker.lower()}")
    assert len(found.json()["items"]) == 5
    by_serial = await api.read(f"/units/{SCHOOL}/items", q=f"q{marker.lower()}3")
    assert [row["serial_number"] for row in by_serial.json()["items"]] == [f"Q{marker}3"]
    counts = (await api.read(f"/units/{SCHOOL}/items/counts")).json()
    assert counts["by_category"]["printer"] >= 5
    assert counts["total"] == sum(counts["by_status"].values())
    bad = await api.read(f"/units/{SCHOOL}/items", cursor="not-a-cursor")
    assert bad.status_code == 422


async def test_exports_as_csv_and_xlsx(api: Api, laptop: str) -> None:
    await register(api, laptop, serial=f"X-{uuid4().hex[:6]}")
    answer = await api.read(f"/units/{SCHOOL}/items.csv", category_id="laptop")
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Αριθμός παγίου"
    assert len(rows) > 1
    assert all(row[1] == "Φορητός υπολογιστής" for row in rows[1:])
    workbook_answer = await api.read(f"/units/{SCHOOL}/items.xlsx", category_id="laptop")
    assert workbook_answer.status_code == 200
    sheet = load_workbook(io.BytesIO(workbook_answer.content), read_only=True).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) == len(rows)
    stranger = await api.read(f"/units/{SCHOOL}/items.csv", user=api.token("stranger"))
    assert stranger.status_code == 403


async def test_products_are_proposed_by_units_and_approved_by_the_ministry(api: Api) -> None:
    proposal = await api.write(
        "POST",
        "/products",
        {"category_id": "tablet", "manufacturer": "Acme", "model": f"Tab {uuid4().hex[:4]}",
         "proposed_by_unit_id": SCHOOL},
        user=api.token("teacher"),
    )  # fmt: skip
    assert proposal.status_code == 201, proposal.text
    product_id = proposal.json()["stream_id"].removeprefix("product:")
    await api.seen(proposal.json()["stream_id"], proposal.json()["position"])
    item = await register(api, product_id, serial=f"TAB-{uuid4().hex[:6]}")
    row = (await api.read(f"/items/{item['stream_id']}")).json()
    assert row["is_product_pending_approval"] is True
    denied = await api.write(
        "POST", f"/products/{product_id}/approve", {}, user=api.token("teacher")
    )
    assert denied.status_code == 403
    approved = await api.write("POST", f"/products/{product_id}/approve", {})
    assert approved.status_code == 200
    await api.seen(approved.json()["stream_id"], approved.json()["position"])
    assert (await api.read(f"/products/{product_id}")).json()["status"] == "approved"
