"""The units API over HTTP with tokens, on real PostgreSQL and Kafka, its worker running.

Each command and query once; bad input is a 4xx problem naming the field; a command on a missing
unit is 404; a stale If-Match is 412; a retry with the same Idempotency-Key changes nothing; a
directorate administrator grants within its subtree only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.events.units import GlobalRole
from tests.conftest import DatabaseFactory
from tests.conftest import _create_topics as create_topics
from tests.integration.units.kit import PARTITIONS, Api, running_units_service

pytestmark = pytest.mark.infra

MINISTRY = "ypaith"
REGION = "pdeatt"
DIRECTORATE = "0551000"  # a directorate of secondary education
OTHER_DIRECTORATE = "0552000"
PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    url = fresh_database("units_api")
    # A session-wide topic (unique_topic is per test): named for the run, deleted at its end.
    topic = f"units-api.{run_id}"
    await create_topics(kafka_bootstrap, [topic], PARTITIONS)
    _created_topics.append(topic)
    issuer_dir: Path = tmp_path_factory.mktemp("issuer")
    async with running_units_service(url, kafka_bootstrap, topic, issuer_dir) as client:
        await client.register(MINISTRY, None, "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ", "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ")
        await client.register(
            REGION, MINISTRY, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΑΤΤΙΚΗΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ"
        )
        for code, name in ((DIRECTORATE, "Α΄ ΑΘΗΝΑΣ"), (OTHER_DIRECTORATE, "Β΄ ΑΘΗΝΑΣ")):
            await client.register(
                code, REGION, f"ΔΙΕΥΘΥΝΣΗ Δ.Ε. {name}", "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ"
            )
        yield client


async def test_register_then_read_the_unit_with_its_template_locations(api: Api) -> None:
    await api.register(
        "0551010", DIRECTORATE, "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ", municipality="ΑΘΗΝΑΙΩΝ"
    )

    unit = await api.read("/units/0551010")
    locations = await api.read("/units/0551010/locations")

    assert unit.status_code == 200
    assert unit.headers["ETag"] == f'"{unit.json()["version"]}"'
    assert unit.json()["display_name"] == "1ο Γυμνασιο Αθηνων"
    assert unit.json()["municipality"] == "ΑΘΗΝΑΙΩΝ"
    kinds = {location["kind"] for location in locations.json()}
    assert {"office", "computer_lab", "classroom", "library"} <= kinds


async def test_a_registration_answers_201_with_version_position_and_etag(api: Api) -> None:
    answer = await api.write(
        "POST",
        "/units",
        {
            "unit_id": "0551020",
            "parent_id": DIRECTORATE,
            "name": "2ο ΓΕΛ",
            "unit_type": "ΓΕΝΙΚΟ ΛΥΚΕΙΟ",
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["stream_id"] == "0551020"
    assert body["version"] > 1  # the registration and its template locations
    assert body["position"] > 0
    assert answer.headers["ETag"] == f'"{body["version"]}"'
    assert answer.headers["Location"] == "/units/0551020"


async def test_search_ignores_accents_and_case_and_finds_by_code_prefix(api: Api) -> None:
    await api.register("0551030", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ")
    await api.register("0551031", DIRECTORATE, "Γυμνάσιο Αθηνών Πλάκας", "ΓΥΜΝΑΣΙΟ")
    await api.register("0551032", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΠΕΙΡΑΙΑ", "ΓΥΜΝΑΣΙΟ")

    by_name = await api.read("/units", q="γυμνασιο αθηνων")
    by_code = await api.read("/units", code_prefix="055103")

    found = {unit["unit_id"] for unit in by_name.json()}
    assert {"0551030", "0551031"} <= found
    assert "0551032" not in found
    assert {unit["unit_id"] for unit in by_code.json()} == {"0551030", "0551031", "0551032"}


async def test_tree_queries_children_ancestors_and_subtree_counts(api: Api) -> None:
    await api.register("0552010", OTHER_DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΒΥΡΩΝΑ", "ΓΥΜΝΑΣΙΟ")
    await api.register("0552011", OTHER_DIRECTORATE, "ΓΕΛ ΒΥΡΩΝΑ", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ")

    children = await api.read(f"/units/{OTHER_DIRECTORATE}/children")
    ancestors = await api.read("/units/0552010/ancestors")
    subtree = await api.read(f"/units/{REGION}/subtree")

    assert {"0552010", "0552011"} <= {unit["unit_id"] for unit in children.json()}
    assert [unit["unit_id"] for unit in ancestors.json()] == [OTHER_DIRECTORATE, REGION, MINISTRY]
    counts = subtree.json()["by_type"]
    assert counts["ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ"] == 2
    assert counts["ΓΥΜΝΑΣΙΟ"] >= 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"unit_id": "0551040", "parent_id": DIRECTORATE, "unit_type": "ΓΥΜΝΑΣΙΟ"}, "name"),
        ({"unit_id": "IDG0019", "parent_id": DIRECTORATE, "name": "Χ", "unit_type": "ΓΥΜΝΑΣΙΟ"},
         "unit_id"),
        ({"unit_id": "0551041", "parent_id": "0999999", "name": "Χ", "unit_type": "ΓΥΜΝΑΣΙΟ"},
         "parent_id"),
        ({"unit_id": "0551042", "parent_id": DIRECTORATE, "name": "Χ", "unit_type": "ΓΥΜΝΑΣΙΟ",
          "registered_on": "yesterday"}, "registered_on"),
        ({"unit_id": "0551043", "parent_id": DIRECTORATE, "name": "Χ", "unit_type": "ΓΥΜΝΑΣΙΟ",
          "colour": "blue"}, "colour"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_422_problem_naming_the_field(
    api: Api, body: dict[str, str], field: str
) -> None:
    answer = await api.write("POST", "/units", body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert field in [error["field"] for error in answer.json()["errors"]]


async def test_a_command_on_a_missing_unit_is_404(api: Api) -> None:
    answer = await api.write("POST", "/units/0559999/rename", {"name": "Χ"})
    assert answer.status_code == 404
    assert answer.json()["type"].endswith("/unit-not-found")


async def test_a_stale_if_match_is_412_and_a_fresh_one_passes(api: Api) -> None:
    created = await api.register("0551050", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΖΩΓΡΑΦΟΥ", "ΓΥΜΝΑΣΙΟ")
    version = created["version"]

    fresh = await api.write(
        "POST", "/units/0551050/rename", {"name": "1ο ΓΥΜΝΑΣΙΟ ΖΩΓΡΑΦΟΥ"},
        headers={"If-Match": f'"{version}"'},
    )  # fmt: skip
    stale = await api.write(
        "POST", "/units/0551050/rename", {"name": "2ο ΓΥΜΝΑΣΙΟ ΖΩΓΡΑΦΟΥ"},
        headers={"If-Match": f'"{version}"'},
    )  # fmt: skip

    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == f'"{version + 1}"'
    assert stale.status_code == 412
    assert stale.json()["type"].endswith("/precondition-failed")


async def test_a_retry_with_the_same_idempotency_key_changes_nothing(api: Api) -> None:
    await api.register("0551060", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΚΑΙΣΑΡΙΑΝΗΣ", "ΓΥΜΝΑΣΙΟ")
    key = {"Idempotency-Key": "phone-0551060-add-lab"}
    body = {"name": "Δεύτερο εργαστήριο", "kind": "computer_lab"}

    first = await api.write("POST", "/units/0551060/locations", body, headers=key)
    again = await api.write("POST", "/units/0551060/locations", body, headers=key)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    await api.seen("0551060", again.json()["position"])
    names = [loc["name"] for loc in (await api.read("/units/0551060/locations")).json()]
    assert names.count("Δεύτερο εργαστήριο") == 1


async def test_requests_without_a_token_are_401(api: Api) -> None:
    answer = await api.client.get("/units/0551010")
    assert answer.status_code == 401
    assert answer.json()["type"].endswith("/token-missing")


async def test_a_directorate_administrator_grants_within_its_subtree_only(api: Api) -> None:
    await api.register("0551070", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΥΜΗΤΤΟΥ", "ΓΥΜΝΑΣΙΟ")
    await api.register("0552070", OTHER_DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΠΑΓΚΡΑΤΙΟΥ", "ΓΥΜΝΑΣΙΟ")
    made = await api.write(
        "POST",
        "/grants",
        {"user_id": "dir-admin", "unit_id": DIRECTORATE, "role": "manage", "is_recursive": True},
    )
    assert made.status_code == 201, made.text
    await api.grants_seen("dir-admin", made.json()["position"])
    director = api.token("dir-admin")

    inside = await api.write(
        "POST",
        "/grants",
        {"user_id": "teacher-1", "unit_id": "0551070", "role": "entry"},
        user=director,
    )
    outside = await api.write(
        "POST",
        "/grants",
        {"user_id": "teacher-1", "unit_id": "0552070", "role": "entry"},
        user=director,
    )
    global_role = await api.write(
        "POST", "/global-roles", {"user_id": "teacher-1", "role": "auditor"}, user=director
    )

    assert inside.status_code == 201, inside.text
    assert outside.status_code == 403
    assert global_role.status_code == 403
    await api.grants_seen("teacher-1", inside.json()["position"])
    acting = await api.read("/users/me/units", user=api.token("teacher-1"))
    assert [(u["unit_id"], u["roles"]) for u in acting.json()] == [("0551070", ["entry"])]


async def test_a_school_user_cannot_change_the_tree(api: Api) -> None:
    await api.register("0551080", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΗΛΙΟΥΠΟΛΗΣ", "ΓΥΜΝΑΣΙΟ")
    answer = await api.write("POST", "/units/0551080/suspend", {}, user=api.token("someone-else"))
    assert answer.status_code == 403
    assert answer.json()["type"].endswith("/forbidden")


async def test_revoke_removes_the_grant(api: Api) -> None:
    await api.register("0551090", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΑΓ. ΔΗΜΗΤΡΙΟΥ", "ΓΥΜΝΑΣΙΟ")
    granted = await api.write(
        "POST", "/grants", {"user_id": "head-1", "unit_id": "0551090", "role": "certify"}
    )
    revoked = await api.write(
        "POST", "/grants/revoke", {"user_id": "head-1", "unit_id": "0551090", "role": "certify"}
    )
    again = await api.write(
        "POST", "/grants/revoke", {"user_id": "head-1", "unit_id": "0551090", "role": "certify"}
    )
    assert (granted.status_code, revoked.status_code, again.status_code) == (201, 200, 404)
    await api.grants_seen("head-1", revoked.json()["position"])
    held = await api.read("/users/head-1/grants")
    assert held.json()["grants"] == []


async def test_reparent_refuses_a_cycle_and_abolish_refuses_open_children(api: Api) -> None:
    await api.register("0551100", DIRECTORATE, "ΓΡΑΦΕΙΟ", "ΓΡΑΦΕΙΟ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ")
    await api.register("0551101", "0551100", "ΓΥΜΝΑΣΙΟ ΓΡΑΦΕΙΟΥ", "ΓΥΜΝΑΣΙΟ")

    cycle = await api.write("POST", "/units/0551100/reparent", {"to_parent_id": "0551101"})
    abolish = await api.write("POST", "/units/0551100/abolish", {})
    moved = await api.write("POST", "/units/0551101/reparent", {"to_parent_id": DIRECTORATE})
    await api.seen("0551101", moved.json()["position"])
    abolished = await api.write("POST", "/units/0551100/abolish", {"decision_reference": "ΦΕΚ"})
    under_abolished = await api.write(
        "POST",
        "/units",
        {"unit_id": "0551102", "parent_id": "0551100", "name": "Χ", "unit_type": "ΓΥΜΝΑΣΙΟ"},
    )

    assert cycle.status_code == 409
    assert cycle.json()["type"].endswith("/unit-cycle")
    assert abolish.status_code == 409
    assert abolish.json()["type"].endswith("/unit-has-open-children")
    assert (moved.status_code, abolished.status_code) == (200, 200)
    assert under_abolished.status_code == 409
    assert under_abolished.json()["type"].endswith("/parent-closed")


async def test_suspend_and_reactivate(api: Api) -> None:
    await api.register("0551110", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΒΟΥΛΑΣ", "ΓΥΜΝΑΣΙΟ")
    suspended = await api.write("POST", "/units/0551110/suspend", {"reason": "σεισμός"})
    twice = await api.write("POST", "/units/0551110/suspend", {})
    await api.seen("0551110", suspended.json()["position"])
    status = (await api.read("/units/0551110")).json()["status"]
    reactivated = await api.write("POST", "/units/0551110/reactivate", {})

    assert (suspended.status_code, twice.status_code, reactivated.status_code) == (200, 409, 200)
    assert status == "suspended"


async def test_merge_moves_locations_and_grants_and_keeps_history(api: Api) -> None:
    await api.register("0551120", DIRECTORATE, "1ο ΓΥΜΝΑΣΙΟ ΒΑΡΗΣ", "ΓΥΜΝΑΣΙΟ")
    await api.register("0551121", DIRECTORATE, "2ο ΓΥΜΝΑΣΙΟ ΒΑΡΗΣ", "ΓΥΜΝΑΣΙΟ")
    granted = await api.write(
        "POST", "/grants", {"user_id": "teacher-vari", "unit_id": "0551121", "role": "entry"}
    )
    assert granted.status_code == 201

    merged = await api.write(
        "POST", "/units/0551121/merge", {"into_unit_id": "0551120", "decision_reference": "ΦΕΚ"}
    )
    assert merged.status_code == 200, merged.text
    await api.seen("0551121", merged.json()["position"])
    await api.grants_seen("teacher-vari", granted.json()["position"])
    absorbing = await api.read("/units/0551120/locations")
    while not any(loc["origin_unit_id"] == "0551121" for loc in absorbing.json()):
        absorbing = await api.read("/units/0551120/locations")  # its own stream, another partition
    acting = await api.read("/users/teacher-vari/units")
    history = await api.read("/units/0551121/history")
    old = await api.read("/units/0551121")

    assert any(loc["location_id"] == "0551121-L1" for loc in absorbing.json())
    assert [u["unit_id"] for u in acting.json()] == ["0551120"]
    assert old.json()["status"] == "merged"
    assert old.json()["merged_into"] == "0551120"
    types = [entry["type"] for entry in history.json()]
    assert types[0] == "UnitRegistered"
    assert "RoleGranted" in types
    assert types[-1] == "UnitMerged"
    assert history.json()[-1]["actor_id"] == "admin"


async def test_the_tree_as_it_was_on_a_past_date(api: Api) -> None:
    await api.register("0551130", DIRECTORATE, "ΠΑΛΙΟ ΟΝΟΜΑ", "ΓΥΜΝΑΣΙΟ")
    renamed = await api.write(
        "POST", "/units/0551130/rename", {"name": "ΝΕΟ ΟΝΟΜΑ", "renamed_on": "2024-09-01"}
    )
    assert renamed.status_code == 200
    late = await api.write(
        "POST",
        "/units",
        {"unit_id": "0551131", "parent_id": DIRECTORATE, "name": "ΝΕΟ ΣΧΟΛΕΙΟ",
         "unit_type": "ΓΥΜΝΑΣΙΟ", "registered_on": "2025-09-01"},
    )  # fmt: skip
    assert late.status_code == 201

    then = await api.read("/tree", on="2023-01-01", root=DIRECTORATE)
    now = await api.read("/tree", on="2026-01-01", root=DIRECTORATE)

    rows_then = {row["unit_id"]: row for row in map(json.loads, then.text.splitlines())}
    rows_now = {row["unit_id"]: row for row in map(json.loads, now.text.splitlines())}
    assert then.headers["content-type"] == "application/x-ndjson"
    assert rows_then[DIRECTORATE]["depth"] == 0
    assert rows_then["0551130"]["name"] == "ΠΑΛΙΟ ΟΝΟΜΑ"
    assert rows_then["0551130"]["depth"] == 1
    assert "0551131" not in rows_then
    assert rows_now["0551130"]["name"] == "ΝΕΟ ΟΝΟΜΑ"
    assert "0551131" in rows_now


async def test_history_and_the_whole_tree_need_a_reader(api: Api) -> None:
    stranger = api.token("stranger")
    auditor = api.token("auditor-1", GlobalRole.AUDITOR)

    assert (await api.read("/units/0551010/history", user=stranger)).status_code == 403
    assert (await api.read("/units/0551010/history", user=auditor)).status_code == 200
    assert (await api.read("/tree", on="2026-01-01", user=stranger)).status_code == 403
    assert (await api.read("/tree", on="2026-01-01", user=auditor)).status_code == 200


async def test_a_support_unit_serves_schools(api: Api) -> None:
    await api.register("0551140", DIRECTORATE, "ΚΕΠΛΗΝΕΤ Α΄ ΑΘΗΝΑΣ", "ΚΕΠΛΗΝΕΤ")
    started = await api.write("POST", "/units/0551140/serving", {"served_unit_id": "0551010"})
    refused = await api.write("POST", "/units/0551010/serving", {"served_unit_id": "0551140"})
    await api.seen("0551140", started.json()["position"])
    serving = await api.read("/units/0551140/serving")
    served_by = await api.read("/units/0551010/serving")

    assert (started.status_code, refused.status_code) == (200, 409)
    assert serving.json()["serves"] == ["0551010"]
    assert served_by.json()["served_by"] == ["0551140"]


async def test_locations_are_renamed_and_retired(api: Api) -> None:
    await api.register("0551150", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΠΕΥΚΗΣ", "ΓΥΜΝΑΣΙΟ")
    renamed = await api.write(
        "POST", "/units/0551150/locations/0551150-L3/rename", {"name": "ΣΕΠΕΗΥ"}
    )
    retired = await api.write("POST", "/units/0551150/locations/0551150-L4/retire", {})
    missing = await api.write("POST", "/units/0551150/locations/0551150-L99/retire", {})
    await api.seen("0551150", retired.json()["position"])
    open_locations = {
        loc["location_id"]: loc["name"]
        for loc in (await api.read("/units/0551150/locations")).json()
    }

    assert (renamed.status_code, retired.status_code, missing.status_code) == (200, 200, 404)
    assert open_locations["0551150-L3"] == "ΣΕΠΕΗΥ"
    assert "0551150-L4" not in open_locations


async def test_change_details_with_patch(api: Api) -> None:
    await api.register("0551160", DIRECTORATE, "ΓΥΜΝΑΣΙΟ ΚΗΦΙΣΙΑΣ", "ΓΥΜΝΑΣΙΟ")
    changed = await api.write(
        "PATCH", "/units/0551160", {"address": "Λεωφ. Κηφισίας 1", "postal_code": "14561"}
    )
    assert changed.status_code == 200
    await api.seen("0551160", changed.json()["position"])
    unit = (await api.read("/units/0551160")).json()
    assert (unit["address"], unit["postal_code"]) == ("Λεωφ. Κηφισίας 1", "14561")
