"""The compliance projection and public reports on real PostgreSQL and Kafka, through HTTP.

One scenario for the December 2026 window: units of two directorates; changes recorded inside
and outside the window; certifications before and after the deadline; a transfer pending at the
deadline; a merged and a suspended unit; a deadline extended for one directorate through the
campaign command. The reports list exactly the expected units in each state, in HTML, CSV and
JSON; filters, search and sort narrow and order them; rebuilding the projection from offset 0
gives the same bytes; state changes are published once as UnitComplianceChanged.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Hashable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from compliance import handlers, reports, views
from compliance.commands import PublishComplianceChanges
from compliance.main import projections
from compliance.report_memo import Totals
from shared.clock import ATHENS
from shared.consumer import rebuild
from shared.events.compliance import ComplianceState, ReminderStep, UnitComplianceChanged
from shared.events.equipment import (
    InventoryCertified,
    InventoryTransferOpened,
    ItemMoved,
    ItemRegistered,
    ItemStatus,
    ItemStatusChanged,
    ItemTransferDispatched,
)
from shared.events.units import (
    GlobalRole,
    RoleGranted,
    UnitMerged,
    UnitRegistered,
    UnitRole,
    UnitSuspended,
)
from tests.conftest import DatabaseFactory
from tests.conftest import _create_topics as create_topics
from tests.integration.compliance.report_kit import PARTITIONS, World, running_world

pytestmark = pytest.mark.infra

WINDOW = "window-2026-12"
NOW = datetime(2027, 1, 20, 12, 0, tzinfo=ATHENS)
MID_WINDOW = datetime(2026, 12, 20, 12, 0, tzinfo=ATHENS)
ROOT, R_ATTICA, R_CRETE = "ypaith", "9900001", "9900002"
D_ATHENS, D_HERAKLION = "9910001", "9910002"
PROBLEM = "application/problem+json"

# unit id → (directorate, name, type)
SCHOOLS = {
    "0551001": (D_ATHENS, "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    "0551002": (D_ATHENS, "2ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
    "0551003": (D_ATHENS, "1ο ΕΠΑΛ ΑΘΗΝΩΝ", "ΕΠΑΛ"),
    "0551004": (D_ATHENS, "3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    "0551005": (D_ATHENS, "4ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    "0551006": (D_ATHENS, "5ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    "0552001": (D_HERAKLION, "Γυμνάσιο Ηρακλείου", "ΓΥΜΝΑΣΙΟ"),
    "0552002": (D_HERAKLION, "Γενικό Λύκειο Μοιρών", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
}
COMPLETED = {"0551001": "certified", "0551002": "late", "0552001": "certified"}
NOT_COMPLETED = {"0551003": "missed", "0551004": "missed", "0552002": "missed"}


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ATHENS)  # type: ignore[arg-type,misc]  # year, month, day, …


def registered(unit_id: str, parent: str | None, name: str, unit_type: str) -> UnitRegistered:
    return UnitRegistered(
        unit_id=unit_id,
        parent_id=parent,
        name=name,
        unit_type=unit_type,
        registered_on=date(2020, 9, 1),
        email=f"mail@{unit_id}.sch.gr",
    )


async def register_item(world: World, unit_id: str, when: datetime) -> uuid.UUID:
    item_id = uuid.uuid4()
    await world.emit(
        world.equipment,
        str(item_id),
        [
            ItemRegistered(
                item_id=item_id, unit_id=unit_id, product_id=uuid.uuid4(), category_id="laptop",
                manufacturer="Lenovo", model="L14", asset_number=f"{unit_id}-{item_id.hex[:6]}",
                location_id=f"{unit_id}-L1", performed_on=when.date(),
            )
        ],
        at=when,
    )  # fmt: skip
    return item_id


async def certify(world: World, unit_id: str, when: datetime, items: int) -> None:
    await world.emit(
        world.equipment,
        f"inventory:{unit_id}",
        [
            InventoryCertified(
                unit_id=unit_id, certification_id=uuid.uuid4(), certified_at=when,
                certified_on=when.date(), signer_id=f"head-{unit_id}", item_count=items,
                content_hash="ab" * 32, covers_position=1,
            )
        ],
        at=when,
    )  # fmt: skip


async def build_scenario(world: World) -> None:
    tree = [
        registered(ROOT, None, "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ", "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"),
        registered(R_ATTICA, ROOT, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΑΤΤΙΚΗΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ"),
        registered(R_CRETE, ROOT, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΚΡΗΤΗΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ"),
        registered(D_ATHENS, R_ATTICA, "ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ", "ΔΙΕΥΘΥΝΣΗ Δ.Ε."),
        registered(D_HERAKLION, R_CRETE, "ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΗΡΑΚΛΕΙΟΥ", "ΔΙΕΥΘΥΝΣΗ Δ.Ε."),
    ]
    # Schools first, in reverse: their parents arrive later on other partitions, and the tree
    # must still place them once everything is projected.
    for unit_id, (parent, name, unit_type) in sorted(SCHOOLS.items(), reverse=True):
        await world.emit(
            world.units, f"unit-{unit_id}", [registered(unit_id, parent, name, unit_type)],
            at=at(2026, 9, 1),
        )  # fmt: skip
    for event in tree:
        await world.emit(world.units, f"unit-{event.unit_id}", [event], at=at(2026, 9, 1))
    await world.emit(
        world.units,
        "grants",
        [
            RoleGranted(
                user_id="director-athens", unit_id=D_ATHENS, role=UnitRole.MANAGE,
                is_recursive=True, granted_at=at(2026, 9, 1),
            )
        ],
        at=at(2026, 9, 1),
    )  # fmt: skip
    # 0551005 certified in June (its initial inventory) and merges into 0551001 in December.
    await certify(world, "0551005", at(2026, 6, 10, 10), 3)
    await world.emit(
        world.units, "unit-0551005",
        [UnitMerged(unit_id="0551005", into_unit_id="0551001", merged_on=date(2026, 12, 15))],
        at=at(2026, 12, 15),
    )  # fmt: skip
    await world.emit(
        world.units, "unit-0551006",
        [UnitSuspended(unit_id="0551006", suspended_on=date(2026, 12, 5))],
        at=at(2026, 12, 5),
    )  # fmt: skip
    # 0551001: items, then certified in time.
    first = await register_item(world, "0551001", at(2026, 12, 2, 9))
    await register_item(world, "0551001", at(2026, 12, 2, 9, 5))
    await certify(world, "0551001", at(2026, 12, 10, 11), 2)
    # 0551002: a change in the window, certified after the deadline.
    moved = await register_item(world, "0551002", at(2026, 12, 3, 9))
    await world.emit(
        world.equipment, str(moved),
        [ItemMoved(item_id=moved, unit_id="0551002", from_location_id="0551002-L1",
                   to_location_id="0551002-L2", performed_on=date(2026, 12, 4))],
        at=at(2026, 12, 4, 9),
    )  # fmt: skip
    await certify(world, "0551002", at(2027, 1, 5, 9), 1)
    # 0551003: changes in the window and a transfer pending at the deadline; never certified.
    sent = await register_item(world, "0551003", at(2026, 12, 20, 9))
    transfer = uuid.uuid4()
    await world.emit(
        world.equipment, str(sent),
        [
            ItemStatusChanged(item_id=sent, unit_id="0551003", from_status=ItemStatus.IN_USE,
                              to_status=ItemStatus.IN_STORAGE, reason="x",
                              performed_on=date(2026, 12, 29)),
            ItemTransferDispatched(item_id=sent, unit_id="0551003", transfer_id=transfer,
                                   to_unit_id="0551001", from_location_id="0551003-L1",
                                   performed_on=date(2026, 12, 30)),
        ],
        at=at(2026, 12, 30, 9),
    )  # fmt: skip
    await world.emit(
        world.equipment, "inventory:0551003",
        [InventoryTransferOpened(unit_id="0551003", transfer_id=transfer, item_id=sent,
                                 from_unit_id="0551003", to_unit_id="0551001",
                                 performed_on=date(2026, 12, 30))],
        at=at(2026, 12, 30, 9),
    )  # fmt: skip
    # 0551004: a change in November only (outside the window), never certified.
    await register_item(world, "0551004", at(2026, 11, 20, 9))
    # 0552001: certified on 12 January: in time only thanks to its directorate's extension.
    await register_item(world, "0552001", at(2026, 12, 28, 9))
    await certify(world, "0552001", at(2027, 1, 12, 9), 1)
    del first
    await world.settle()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    urls = (
        fresh_database("compliance_src_units"),
        fresh_database("compliance_src_equipment"),
        fresh_database("compliance_reports"),
    )
    topics = tuple(f"compliance-test.{name}.{run_id}" for name in ("units", "equipment", "own"))
    await create_topics(kafka_bootstrap, list(topics), PARTITIONS)
    _created_topics.extend(topics)
    issuer_dir: Path = tmp_path_factory.mktemp("compliance-issuer")
    async with running_world(
        urls=urls, topics=topics, bootstrap_servers=kafka_bootstrap,  # type: ignore[arg-type]
        issuer_dir=issuer_dir, now=NOW,
    ) as built:  # fmt: skip
        await build_scenario(built)
        answer = await built.client.post(
            f"/campaigns/{WINDOW}/extensions",
            json={"scope_kind": "directorate", "scope_unit_id": D_HERAKLION,
                  "deadline_on": "2027-01-15", "reason": "χιονοπτώσεις"},
            headers=built.token("admin", GlobalRole.MINISTRY_ADMIN),
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        await built.wait_compliance(answer.json()["stream_id"], answer.json()["position"])
        yield built


async def get_json(world: World, path: str, **params: Any) -> dict[str, Any]:
    response = await world.client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def states(document: dict[str, Any]) -> dict[str, str]:
    return {unit["unit_id"]: unit["state"] for unit in document["units"]}


async def test_the_reports_list_exactly_the_expected_units_in_each_state(world: World) -> None:
    not_completed = await get_json(world, "/reports/not-completed.json")
    completed = await get_json(world, "/reports/completed.json")

    assert states(not_completed) == NOT_COMPLETED
    assert states(completed) == COMPLETED
    assert not_completed["totals"] == {
        "completed": 3, "not_completed": 3, "total": 6, "matching": 3,
    }  # fmt: skip
    units = {u["unit_id"]: u for u in not_completed["units"] + completed["units"]}
    assert units["0551003"]["pending_transfers"] == 1
    assert units["0551004"]["has_initial_inventory"] is False
    assert units["0551001"]["absorbed_unit_ids"] == ["0551005"]
    assert units["0551001"]["item_count"] == 2
    assert units["0551001"]["certified_at"] == "2026-12-10T11:00:00+02:00"
    assert units["0552001"]["deadline_on"] == "2027-01-15"
    assert units["0551001"]["region_id"] == R_ATTICA
    assert units["0551001"]["directorate_name"] == "ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ"
    by_directorate = {c["id"]: c for c in completed["counts"]["directorates"]}
    assert by_directorate[D_ATHENS]["completed"] == 2
    assert by_directorate[D_ATHENS]["not_completed"] == 2
    assert {c["id"]: c["total"] for c in completed["counts"]["regions"]} == {
        R_ATTICA: 4, R_CRETE: 2,
    }  # fmt: skip


async def test_during_the_window_units_are_not_started_or_in_progress(world: World) -> None:
    world.clock.set(MID_WINDOW)
    try:
        not_completed = await get_json(world, "/reports/not-completed.json")
    finally:
        world.clock.set(NOW)

    # The facts include what happens later (0551002 certifies on 5 January: late, completed);
    # the rest is as the day saw it: changes since 1 December or none.
    assert states(not_completed) == {
        "0551003": "in_progress",
        "0551004": "not_started",
        "0552002": "not_started",
    }


async def test_filters_search_and_sort_narrow_and_order_the_rows(world: World) -> None:
    by_directorate = await get_json(world, "/reports/not-completed.json", directorate=D_HERAKLION)
    by_region = await get_json(world, "/reports/completed.json", region=R_ATTICA)
    by_type = await get_json(world, "/reports/completed.json", unit_type="ΓΕΝΙΚΟ ΛΥΚΕΙΟ")
    by_code = await get_json(world, "/reports/completed.json", code="05520")
    searched = await get_json(world, "/reports/not-completed.json", q="λυκειο μοιρων")
    searched_caps = await get_json(world, "/reports/completed.json", q="ΓΥΜΝΆΣΙΟ ηρακλειου")
    by_name = await get_json(world, "/reports/completed.json", sort="name")
    by_code_desc = await get_json(world, "/reports/completed.json", sort="code", order="desc")

    assert list(states(by_directorate)) == ["0552002"]
    assert set(states(by_region)) == {"0551001", "0551002"}
    assert list(states(by_type)) == ["0551002"]
    assert list(states(by_code)) == ["0552001"]
    assert list(states(searched)) == ["0552002"]
    assert list(states(searched_caps)) == ["0552001"]
    # Greek alphabetical order, accents and case ignored: "1ο…", "2ο…", "Γυμνάσιο…".
    assert [u["unit_id"] for u in by_name["units"]] == ["0551001", "0551002", "0552001"]
    assert [u["unit_id"] for u in by_code_desc["units"]] == ["0552001", "0551002", "0551001"]
    # Counts at the top follow the filters.
    assert by_directorate["totals"]["total"] == 2


async def test_csv_is_utf8_with_a_bom_for_excel_and_lists_the_same_units(world: World) -> None:
    response = await world.client.get("/reports/not-completed.csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Κωδικός"
    assert {row[0] for row in rows[1:]} == set(NOT_COMPLETED)


async def test_html_is_plain_greek_with_a_get_form_and_the_rows(world: World) -> None:
    response = await world.client.get(
        "/reports/not-completed.html", params={"directorate": D_ATHENS}
    )
    page = response.text

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="get" action="/reports/not-completed.html">' in page
    assert "<script" not in page
    assert "1ο ΕΠΑΛ ΑΘΗΝΩΝ" in page
    assert "3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ" in page
    assert "Γενικό Λύκειο Μοιρών" not in page
    assert "@media print" in page


async def test_unknown_campaign_and_format_are_refused(world: World) -> None:
    unknown = await world.client.get("/reports/completed.json", params={"campaign": "adhoc-none"})
    bad_format = await world.client.get("/reports/completed.pdf")

    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert bad_format.status_code == 422


async def test_eligibility_lists_units_certified_in_time(world: World) -> None:
    document = await get_json(world, f"/eligibility/{WINDOW}.json")
    as_csv = await world.client.get(f"/eligibility/{WINDOW}.csv")

    assert list(states(document)) == ["0551001", "0552001"]
    assert as_csv.content.startswith(b"\xef\xbb\xbf")
    assert as_csv.content.decode("utf-8-sig").count("\r\n") == 3


@pytest.mark.parametrize("kind", [reports.ReportKind.NOT_COMPLETED, reports.ReportKind.COMPLETED])
async def test_rows_written_by_postgresql_are_the_bytes_python_writes(
    world: World, kind: reports.ReportKind
) -> None:
    # The JSON reports take their rows from PostgreSQL (`rows_as_json`): the same bytes as the
    # rows rendered in Python, times in Athens with their offset included.
    asked = [
        reports.ReportRequest(kind=kind),
        reports.ReportRequest(kind=kind, sort=reports.SortKey.ITEMS, is_descending=True),
        reports.ReportRequest(kind=kind, filters=views.UnitFilters(search="γυμνασιο")),
        reports.ReportRequest(kind=kind, per_page=2, page=2),
    ]
    async with world.app.state.sessions() as session:
        for request in asked:
            in_python = await reports.build_report(session, request, now=world.clock.now())
            in_sql = await reports.build_report(
                session, request, now=world.clock.now(), rows_as_json=True
            )

            assert in_sql.rows_json is not None
            assert reports.render_json(in_sql) == reports.render_json(in_python), request


async def test_counts_from_kept_totals_equal_counts_read_whole(world: World) -> None:
    # With the totals per group kept between requests (TreeMemo), a request counts only the
    # certified units; the counts must equal those of one query over every unit, per filter.
    totals: dict[Hashable, Totals] = {}
    asked = [
        reports.ReportRequest(kind=kind, filters=filters)
        for kind in (reports.ReportKind.NOT_COMPLETED, reports.ReportKind.COMPLETED)
        for filters in (
            views.UnitFilters(),
            views.UnitFilters(search="γυμνασιο"),
            views.UnitFilters(directorate_id=D_ATHENS),
            views.UnitFilters(unit_code="055"),
        )
    ]
    async with world.app.state.sessions() as session:
        for _ in range(2):  # the second time from the kept totals
            for request in asked:
                whole = await reports.build_report(session, request, now=world.clock.now())
                kept = await reports.build_report(
                    session, request, now=world.clock.now(), totals=totals
                )

                assert (kept.regions, kept.directorates) == (whole.regions, whole.directorates)
                assert (kept.completed, kept.not_completed, kept.matching) == (
                    whole.completed,
                    whole.not_completed,
                    whole.matching,
                ), request
    assert len(totals) == 4


async def test_rebuilding_the_projection_from_offset_0_gives_the_same_bytes(world: World) -> None:
    paths = [
        "/reports/not-completed.json", "/reports/completed.json", "/reports/not-completed.csv",
        "/reports/completed.csv", "/reports/not-completed.html", "/reports/completed.html",
        f"/eligibility/{WINDOW}.json",
    ]  # fmt: skip
    before = [(await world.client.get(p)).content for p in paths]
    projection = next(p for p in projections(world.settings) if p.name == "compliance.unit-status")

    applied = await rebuild(
        projection,
        engine=world.app.state.engine,
        bootstrap_servers=world.settings.kafka_bootstrap_servers,
    )
    after = [(await world.client.get(p)).content for p in paths]

    assert applied > 0
    assert after == before


async def test_reminder_targets_follow_the_unit_deadlines(world: World) -> None:
    async with world.app.state.sessions() as session:
        seven_days = await views.units_needing_reminder(session, WINDOW, date(2026, 12, 24))
        overdue = await views.units_needing_reminder(session, WINDOW, date(2027, 1, 2))
        unknown = await views.units_needing_reminder(session, "adhoc-none", date(2027, 1, 2))

    # Heraklion's units have until 15 January: 22 days left, no reminder yet.
    assert {(t.unit_id, t.step) for t in seven_days} == {
        (unit_id, ReminderStep.DAYS_7) for unit_id in ("0551002", "0551003", "0551004")
    }
    by_unit = {t.unit_id: t for t in overdue}
    assert by_unit["0551003"].step is ReminderStep.OVERDUE
    assert by_unit["0551003"].recipient_unit_ids == (D_ATHENS,)
    assert by_unit["0551003"].state is ComplianceState.MISSED
    assert by_unit["0552001"].step is ReminderStep.DAYS_14  # extended to 15 January
    assert by_unit["0552001"].recipient_unit_ids == ("0552001",)
    assert by_unit["0552001"].email == "mail@0552001.sch.gr"
    assert unknown == []


async def test_state_changes_are_published_once_as_unit_compliance_changed(world: World) -> None:
    command = PublishComplianceChanges(WINDOW)
    store = world.app.state.store

    first = await handlers.publish_compliance_changes(
        command, store=store, sessions=world.app.state.sessions, clock=world.clock
    )
    again = await handlers.publish_compliance_changes(
        command, store=store, sessions=world.app.state.sessions, clock=world.clock
    )
    history = await store.load(f"compliance:{WINDOW}:0552001")

    assert first == 6
    assert again == 0
    [recorded] = history
    event = recorded.event()
    assert isinstance(event, UnitComplianceChanged)
    assert (event.from_state, event.to_state) == (None, ComplianceState.CERTIFIED)
    assert event.deadline_on == date(2027, 1, 15)


async def test_campaign_commands_need_a_ministry_administrator(world: World) -> None:
    body = {
        "campaign_id": "adhoc-labs-2027",
        "title": "Απογραφή εργαστηρίων",
        "deadline_on": "2027-02-15",
        "scope_kind": "region",
        "scope_value": R_CRETE,
    }
    admin = world.token("admin", GlobalRole.MINISTRY_ADMIN)

    anonymous = await world.client.post("/campaigns", json=body)
    director = await world.client.post(
        "/campaigns", json=body, headers=world.token("director-athens")
    )
    opened = await world.client.post(
        "/campaigns", json=body, headers={**admin, "Idempotency-Key": "open-labs-1"}
    )
    retried = await world.client.post(
        "/campaigns", json=body, headers={**admin, "Idempotency-Key": "open-labs-1"}
    )
    twice = await world.client.post("/campaigns", json=body, headers=admin)
    bad_scope = await world.client.post(
        "/campaigns",
        json={**body, "campaign_id": "adhoc-x", "scope_value": "0000000"},
        headers=admin,
    )
    bad_day = await world.client.post(
        "/campaigns", json={**body, "campaign_id": "adhoc-y", "deadline_on": "2020-01-01"},
        headers=admin,
    )  # fmt: skip

    assert anonymous.status_code == 401
    assert director.status_code == 403
    assert opened.status_code == 201, opened.text
    assert retried.status_code == 201
    assert retried.content == opened.content
    assert opened.headers["etag"] == '"1"'
    assert twice.status_code == 409
    assert twice.json()["type"].endswith("/campaign-exists")
    assert bad_scope.status_code == 422
    assert bad_scope.json()["errors"][0]["field"] == "scope_value"
    assert bad_day.status_code == 422
    await world.wait_compliance(opened.json()["stream_id"], opened.json()["position"])
    campaign = await get_json(world, "/campaigns/adhoc-labs-2027")
    assert campaign["scope_value"] == R_CRETE
    assert campaign["deadline_on"] == "2027-02-15"
    # The ad-hoc campaign covers Crete only; 0552001's certification (12 January) came before
    # the campaign opened (now, 20 January), so it does not count.
    report = await get_json(world, "/reports/not-completed.json", campaign="adhoc-labs-2027")
    assert set(states(report)) == {"0552001", "0552002"}

    stale = await world.client.post(
        "/campaigns/adhoc-labs-2027/close", json={"reason": "τέλος"},
        headers={**admin, "If-Match": '"7"'},
    )  # fmt: skip
    closed = await world.client.post(
        "/campaigns/adhoc-labs-2027/close", json={"reason": "τέλος"},
        headers={**admin, "If-Match": '"1"'},
    )  # fmt: skip
    again = await world.client.post("/campaigns/adhoc-labs-2027/close", json={}, headers=admin)
    missing = await world.client.post("/campaigns/adhoc-none/close", json={}, headers=admin)

    assert stale.status_code in (409, 412)
    assert closed.status_code == 200, closed.text
    assert again.status_code == 409
    assert missing.status_code == 404


async def test_dashboards_need_read_on_the_scope_and_come_in_three_formats(world: World) -> None:
    director = world.token("director-athens")
    stranger = world.token("someone")

    as_json = await world.client.get(f"/dashboards/{D_ATHENS}.json", headers=director)
    as_html = await world.client.get(f"/dashboards/{D_ATHENS}.html", headers=director)
    as_xlsx = await world.client.get(f"/dashboards/{D_ATHENS}.xlsx", headers=director)
    other = await world.client.get(f"/dashboards/{D_HERAKLION}.json", headers=director)
    refused = await world.client.get(f"/dashboards/{D_ATHENS}.json", headers=stranger)
    everything = await world.client.get(
        "/dashboards/all.json", headers=world.token("auditor", GlobalRole.AUDITOR)
    )
    anonymous = await world.client.get(f"/dashboards/{D_ATHENS}.json")

    assert as_json.status_code == 200, as_json.text
    board = as_json.json()
    assert board["overall"]["total"] == 4
    assert board["overall"]["certified"] == 1
    assert board["overall"]["late"] == 1
    assert {r["name"]: r["total"] for r in board["by_unit_type"]} == {
        "ΓΕΝΙΚΟ ΛΥΚΕΙΟ": 1, "ΓΥΜΝΑΣΙΟ": 2, "ΕΠΑΛ": 1,
    }  # fmt: skip
    assert [t["campaign_id"] for t in board["trend"]][-1] == WINDOW
    assert "<svg" in as_html.text
    assert as_xlsx.content.startswith(b"PK")
    assert other.status_code == 403
    assert refused.status_code == 403
    assert everything.status_code == 200
    assert everything.json()["overall"]["total"] == 6
    assert anonymous.status_code == 401
