"""Certification, the as-of inventory and the bulk import over HTTP with tokens (real PostgreSQL and
Kafka, the equipment worker's loops running): who may call them, what bad input answers, and that a
retry or a re-import changes nothing."""

# ruff: noqa: F811  (pytest fixtures imported from test_api are parameters of the same name here)

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from equipment.certexport import verify_export
from shared.events.units import UnitRole
from tests.integration.equipment.kit import Api
from tests.integration.equipment.test_api import DIRECTORATE, api, laptop, problem_fields  # noqa: F401  (session fixtures shared with the API tests)

pytestmark = pytest.mark.infra

CERTIFIED = "0551030"
IN_TRANSFER = "0551040"
CSV_FILE = (
    "Α/Α;Κατηγορία;Κατασκευαστής;Μοντέλο;Σειριακός αριθμός;Χώρος;Κατάσταση\n"
    "1;Φορητός υπολογιστής;Lenovo;ThinkPad L14;SN-HTTP-1;{lab};Σε χρήση\n"
    "2;Φορητός υπολογιστής;Lenovo;ThinkPad L14;SN-HTTP-2;{lab};Σε αποθήκη\n"
    "3;Φορητός υπολογιστής;;ThinkPad L14;SN-HTTP-3;{lab};Σε χρήση\n"
)


async def ready_unit(api: Api, unit_id: str, users: dict[str, UnitRole]) -> None:
    await api.unit(unit_id, DIRECTORATE, ["Εργαστήριο", "Γραφείο"])
    for user, role in users.items():
        await api.grant(user, unit_id, role)


async def register(api: Api, product_id: str, unit_id: str, serial: str, user: str) -> str:
    answer = await api.write(
        "POST", "/items",
        {"unit_id": unit_id, "product_id": product_id, "location_id": f"{unit_id}-L1",
         "serial_number": serial, "performed_on": "2026-01-15"},
        user=api.token(user),
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    await api.seen(answer.json()["stream_id"], answer.json()["position"])
    return str(answer.json()["stream_id"])


async def test_certify_export_verify_pdf_retry_and_refusals(api: Api, laptop: str) -> None:
    await ready_unit(
        api,
        CERTIFIED,
        {"entry-30": UnitRole.ENTRY, "head-30": UnitRole.CERTIFY, "manager-30": UnitRole.MANAGE},
    )
    item_id = await register(api, laptop, CERTIFIED, "SN-CERT-30", "entry-30")
    path = f"/units/{CERTIFIED}/certifications"

    denied = await api.write("POST", path, {}, user=api.token("entry-30"))
    assert denied.status_code == 403, denied.text
    missing = await api.write(
        "POST", "/units/0559999/certifications", {}, user=api.token("head-30")
    )
    assert missing.status_code == 404, missing.text
    bad = await api.write("POST", path, {"signer_name": "x" * 500}, user=api.token("head-30"))
    assert bad.status_code == 422
    assert problem_fields(bad) == ["signer_name"]

    key = {"Idempotency-Key": "certify-0551030-1"}
    first = await api.write(
        "POST", path, {"signer_name": "Διευθύντρια"}, user=api.token("head-30"), headers=key
    )
    assert first.status_code == 201, first.text
    again = await api.write(
        "POST", path, {"signer_name": "Διευθύντρια"}, user=api.token("head-30"), headers=key
    )
    assert (again.status_code, again.json()) == (201, first.json())
    listed = await api.read(path, user=api.token("head-30"))
    assert len(listed.json()) == 1  # the retry certified nothing more
    certification = first.json()
    assert certification["item_count"] == 1

    export = await api.read(
        f"/certifications/{certification['certification_id']}/export.json",
        user=api.token("entry-30"),
    )
    assert export.status_code == 200
    document = json.loads(export.text)
    assert verify_export(document) == []
    assert document["certification"]["content_hash"] == certification["content_hash"]
    pdf = await api.read(
        f"/certifications/{certification['certification_id']}/pdf", user=api.token("entry-30")
    )
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    status = await api.read(f"/units/{CERTIFIED}/certification-status", user=api.token("head-30"))
    assert status.json()["changed_since_certification"] is False
    moved = await api.write(
        "POST",
        f"/items/{item_id}/status",
        {"status": "under_repair", "reason": "οθόνη"},
        user=api.token("manager-30"),
    )
    assert moved.status_code == 200, moved.text
    status = await api.read(f"/units/{CERTIFIED}/certification-status", user=api.token("head-30"))
    assert status.json()["changed_since_certification"] is True
    assert status.json()["latest"]["content_hash"] == certification["content_hash"]

    outsider = await api.read(
        f"/certifications/{certification['certification_id']}", user=api.token("nobody")
    )
    assert outsider.status_code == 403


async def test_certification_is_refused_with_its_reasons_while_a_transfer_is_pending(
    api: Api,
    laptop: str,
) -> None:
    await ready_unit(
        api,
        IN_TRANSFER,
        {"manager-40": UnitRole.MANAGE, "head-40": UnitRole.CERTIFY, "entry-40": UnitRole.ENTRY},
    )
    item_id = await register(api, laptop, IN_TRANSFER, "SN-CERT-40", "entry-40")
    dispatched = await api.write(
        "POST",
        f"/items/{item_id}/transfer",
        {"to_unit_id": CERTIFIED, "reason": "δανεισμός"},
        user=api.token("manager-40"),
    )
    assert dispatched.status_code == 200, dispatched.text
    refused = await api.write(
        "POST", f"/units/{IN_TRANSFER}/certifications", {}, user=api.token("head-40")
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/certification-refused")
    assert refused.json()["reasons"]
    listed = await api.read(f"/units/{IN_TRANSFER}/certifications", user=api.token("head-40"))
    assert listed.json() == []


async def test_as_of_answers_readers_and_refuses_others_and_bad_instants(
    api: Api,
    laptop: str,
) -> None:
    await ready_unit(api, "0551050", {"entry-50": UnitRole.ENTRY})
    before = datetime.now(UTC).isoformat()
    await register(api, laptop, "0551050", "SN-ASOF-50", "entry-50")
    path = "/units/0551050/inventory/as-of"
    earlier = await api.read(path, user=api.token("entry-50"), at=before)
    now = await api.read(path, user=api.token("entry-50"))
    assert (earlier.status_code, now.status_code) == (200, 200)
    assert (earlier.json()["item_count"], now.json()["item_count"]) == (0, 1)
    assert (await api.read(path, user=api.token("nobody"))).status_code == 403
    bad = await api.read(path, user=api.token("entry-50"), at="yesterday")
    assert bad.status_code == 422
    assert problem_fields(bad) == ["at"]


async def test_bulk_import_over_http_reports_each_row_and_a_reimport_changes_nothing(
    api: Api,
) -> None:
    await ready_unit(api, "0551060", {"entry-60": UnitRole.ENTRY})
    body = CSV_FILE.format(lab="Εργαστήριο").encode("utf-8")
    path = "/units/0551060/equipment-imports"

    async def send(user: str, content: bytes) -> Any:
        return await api.client.post(
            path, content=content,
            headers={**api.token(user), "Content-Type": "text/csv", "X-File-Name": "school.csv"},
        )  # fmt: skip

    assert (await send("nobody", body)).status_code == 403
    first = await send("entry-60", body)
    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["status"], result["created"], result["error"]) == ("partial", 2, 1)
    assert [(r["line"], r["field"]) for r in result["rows"] if r["outcome"] == "error"] == [
        (4, "Κατασκευαστής")  # named as the school wrote it in the file
    ]
    again = (await send("entry-60", body)).json()
    assert (again["created"], again["unchanged"], again["error"]) == (0, 2, 1)
    recorded = await api.read(
        f"/equipment-imports/{result['import_id']}", user=api.token("entry-60")
    )
    assert recorded.status_code == 200
    unreadable = await send("entry-60", "όχι αρχείο\n".encode("utf-16"))
    assert unreadable.status_code == 422
    assert unreadable.json()["type"].endswith("/import-format")
