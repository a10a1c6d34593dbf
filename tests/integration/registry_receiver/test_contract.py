"""The OpenAPI document of contract v1 and the reference receiver agree.

The document is hand-written, so nothing generates it from the code: these tests fail when a path,
an enum, a pattern or a required field drifts between the two, or when an example stops being valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry_receiver import schemas
from registry_receiver.main import create_data_app
from registry_receiver.store import Store
from tests.receiver import Receiver
from tests.unit.registry_receiver.builders import key_header, spec_hash

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "services" / "registry-sync" / "contract" / "registry-v1.openapi.yaml"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text("utf-8"))
    return loaded


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            *([node["$ref"]] if "$ref" in node else []),
            *(ref for value in node.values() for ref in refs(value)),
        ]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_document_is_openapi_3_1_contract_version_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["version"] == "1.0.0"
    assert "content_hash" in document["info"]["description"]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref


def test_every_documented_operation_is_served_and_nothing_else(
    document: dict[str, Any], tmp_path: Path
) -> None:
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    store = Store.open(tmp_path / "receiver.sqlite3")
    try:
        app = create_data_app(store)
    finally:
        store.close()
    served = {
        (path, method.upper())
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert served == documented
    assert not any(path.startswith("/_admin") for path, _ in documented)
    assert {getattr(route, "path", None) for route in app.routes}.isdisjoint(
        {"/docs", "/openapi.json"}
    )  # the data port serves the contract only


def test_enums_match_the_receiver(document: dict[str, Any]) -> None:
    push = component(document, "TablePush")["properties"]
    assert push["body_status"]["enum"] == [s.value for s in schemas.BodyStatus]
    assert push["basis"]["enum"] == [b.value for b in schemas.Basis]
    reasons = component(document, "NotReported")["properties"]["reason"]["enum"]
    assert reasons == [r.value for r in schemas.NotReportedReason]
    statuses = component(document, "ExcludedByStatus")["properties"]["status"]["enum"]
    assert statuses == [s.value for s in schemas.ExcludedStatus]
    outcomes = component(document, "PushAnswer")["properties"]["outcome"]["enum"]
    assert outcomes == [o.value for o in schemas.Outcome]


def test_patterns_and_bounds_match_the_receiver(document: dict[str, Any]) -> None:
    assert component(document, "BodyCode")["pattern"] == schemas.BODY_CODE_PATTERN
    assert component(document, "ContentHash")["pattern"] == schemas.HASH_PATTERN
    row = component(document, "Row")["properties"]
    assert row["category_code"]["pattern"] == schemas.CATEGORY_CODE_PATTERN
    assert row["quantity"]["minimum"] == 1
    assert row["line"]["minimum"] == 1
    assert component(document, "TablePush")["properties"]["registry_version"]["minimum"] == 1
    limit = next(
        p for p in document["paths"]["/v1/bodies"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == schemas.MAX_LISTING_LIMIT


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("TablePush", schemas.TablePush),
        ("Row", schemas.Row),
        ("Certification", schemas.Certification),
        ("NotReported", schemas.NotReported),
        ("ExcludedByStatus", schemas.ExcludedByStatus),
        ("PushAnswer", schemas.PushAnswer),
        ("HeldBody", schemas.HeldBody),
        ("ListingItem", schemas.ListingItem),
        ("Listing", schemas.Listing),
    ],
)
def test_objects_are_closed_and_list_the_receivers_fields(
    document: dict[str, Any], schema: str, model: type[schemas.WireModel]
) -> None:
    described = component(document, schema)
    assert described["additionalProperties"] is False
    assert list(described["properties"]) == list(model.model_fields)
    assert described["required"] == list(model.model_fields)  # every field, nullable or not


def test_document_states_the_hash_of_its_examples(document: dict[str, Any]) -> None:
    for name, example in document["components"]["examples"].items():
        value = example["value"]
        assert value["content_hash"] == spec_hash(value["rows"]), name
    empty = spec_hash([])
    assert empty in document["info"]["description"]


def test_document_examples_are_applied_by_the_receiver(
    document: dict[str, Any], receiver: Receiver
) -> None:
    examples = document["paths"]["/v1/bodies/{body_code}/table"]["put"]["requestBody"]["content"]
    pushes = [
        resolve(document, example["$ref"])["value"]
        for example in examples["application/json"]["examples"].values()
    ]
    assert len(pushes) >= 2
    import httpx  # noqa: PLC0415  (only this test talks HTTP)

    for push in sorted(pushes, key=lambda p: p["registry_version"]):
        response = httpx.put(
            f"{receiver.url}/v1/bodies/{push['body_code']}/table",
            json=push,
            headers=key_header(push),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["outcome"] == "applied"
        assert re.fullmatch(schemas.HASH_PATTERN, answer["content_hash"])
        assert answer == {
            "body_code": push["body_code"],
            "outcome": "applied",
            "held_version": push["registry_version"],
            "content_hash": push["content_hash"],
        }
