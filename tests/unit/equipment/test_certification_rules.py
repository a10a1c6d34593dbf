"""Certification rules without I/O: refusals, the certified list and its hash, the export check."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from equipment.certexport import certified_content, content_hash, export_document, verify_export
from equipment.certification import (
    CertificationRefusedError,
    CertifyInventory,
    certified_entry,
    decide,
    missing_parts,
    refusals,
)
from equipment.domain.inventory import PendingTransfer, UnitInventory
from shared.hashchain import canonical_json

UNIT = "0551040"
NOW = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)


def item(**more: Any) -> dict[str, Any]:
    return {
        "item_id": str(uuid4()), "asset_number": "0551040-000001", "category_id": "laptop",
        "manufacturer": "Dell", "model": "Latitude", "serial_number": "SN1",
        "location_id": f"{UNIT}-L1", "status": "in_use", "parts": {}, "version": 1,
        "hash": "ab" * 32, **more,
    }  # fmt: skip


def pending(to_unit: str, from_unit: str) -> UnitInventory:
    transfer = PendingTransfer(uuid4(), uuid4(), from_unit, to_unit, date(2025, 11, 30))
    return UnitInventory(UNIT, version=3, pending_transfers={transfer.transfer_id: transfer})


def test_certification_is_refused_while_a_transfer_from_the_unit_is_pending() -> None:
    reasons = refusals(UNIT, pending("0551050", UNIT), [item()])
    assert [r["reason"] for r in reasons] == ["transfer-pending"]
    assert "to unit 0551050" in reasons[0]["detail"]


def test_certification_is_refused_while_a_transfer_to_the_unit_is_pending() -> None:
    reasons = refusals(UNIT, pending(UNIT, "0551050"), [])
    assert "from unit 0551050" in reasons[0]["detail"]


def test_certification_is_refused_while_a_bundle_lacks_a_required_part() -> None:
    cpu = str(uuid4())
    workstation = item(category_id="workstation", serial_number=None, parts={cpu: "cpu"})
    reasons = refusals(UNIT, UnitInventory(UNIT), [workstation])
    assert reasons[0]["reason"] == "bundle-missing-parts"
    assert reasons[0]["missing_parts"] == {"monitor": 1}
    assert missing_parts("workstation", {cpu: "cpu", str(uuid4()): "monitor"}) == {}
    assert missing_parts("laptop", {}) == {}


def test_decide_lists_every_reason_at_once() -> None:
    bundle = item(category_id="workstation", parts={})
    with pytest.raises(CertificationRefusedError) as refused:
        decide(
            CertifyInventory(UNIT, uuid4(), "head"),
            pending("0551050", UNIT),
            [bundle],
            covers_position=10,
            now=NOW,
        )
    assert sorted(r["reason"] for r in refused.value.reasons) == [
        "bundle-missing-parts",
        "transfer-pending",
    ]


def test_decide_hashes_the_exact_list_sorted_by_item_id() -> None:
    items = [item(), item(asset_number="0551040-000002")]
    header, content = decide(
        CertifyInventory(UNIT, UUID(int=1), "head"),
        UnitInventory(UNIT),
        items,
        covers_position=42,
        now=NOW,
    )
    assert header.item_count == 2
    assert header.covers_position == 42
    assert header.certified_on == date(2025, 12, 1)
    assert [i["item_id"] for i in content["items"]] == sorted(i["item_id"] for i in items)
    assert "parts" not in content["items"][0]  # only the certified fields are hashed
    assert header.content_hash == content_hash(content)
    # The rule as stated: sha256 over canonical JSON, which a verifier can write by hand.
    import hashlib  # noqa: PLC0415  (the point: nothing of ours is needed to check it)
    import json  # noqa: PLC0415

    by_hand = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(by_hand.encode()).hexdigest() == header.content_hash
    assert by_hand.encode() == canonical_json(content)


def test_the_certified_list_changes_its_hash_when_one_item_changes() -> None:
    items = [certified_entry(item()), certified_entry(item())]
    before = content_hash(certified_content(UNIT, items))
    items[1] = {**items[1], "location_id": f"{UNIT}-L2"}
    assert content_hash(certified_content(UNIT, items)) != before


def test_verify_export_names_what_does_not_hold() -> None:
    header, content = decide(
        CertifyInventory(UNIT, uuid4(), "head"), UnitInventory(UNIT), [item()],
        covers_position=1, now=NOW,
    )  # fmt: skip
    document = export_document(header, content)
    assert verify_export(document) == []
    document["content"]["items"][0]["serial_number"] = "SN2"
    assert any("content hash" in problem for problem in verify_export(document))
    document["certification"]["item_count"] = 5
    assert any("item_count" in problem for problem in verify_export(document))
    assert verify_export({}) != []


def test_certified_content_refuses_values_that_are_not_json_scalars() -> None:
    with pytest.raises(TypeError):
        certified_content(UNIT, [{"item_id": "a", "cost": 1.5}])  # type: ignore[dict-item]
