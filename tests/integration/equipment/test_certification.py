"""Certification on the real event store: refusals, the hash from the export, changes afterwards,
the PDF's Greek text, and a change racing the certification.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import pytest_asyncio
from pypdf import PdfReader

from equipment import certification, certpdf
from equipment.certexport import content_hash, verify_export
from equipment.certification import (
    CertificationRefusedError,
    Certified,
    CertifyInventory,
    certification_status,
    certify_inventory,
    certify_with_retries,
)
from shared.clock import FixedClock
from shared.events.envelope import Actor
from shared.events.equipment import BundlePartAdded, ItemBundled
from shared.eventstore import AppendContext, EventStore
from tests.integration.equipment.cert_kit import History, athens, migrated_store

pytestmark = pytest.mark.infra

A = "0551040"
B = "0551050"
LAB, OFFICE = f"{A}-L1", f"{A}-L2"
UNIT = {"unit_id": A, "name": "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "municipality": "Αθηναίων"}


@pytest_asyncio.fixture(loop_scope="session")
async def store(fresh_database: Callable[[str], str]) -> AsyncIterator[EventStore]:
    clock = FixedClock(athens("2025-12-01T09:00"))
    opened = await migrated_store(fresh_database("equipment_cert"), clock)
    async with opened.pool.connection() as connection:
        await connection.execute(
            "TRUNCATE events, outbox, unit_inventory_checkpoints, certifications"
        )
        await connection.execute("UPDATE event_positions SET last_position = 0")
    yield opened
    await opened.close()


def history(store: EventStore) -> History:
    assert isinstance(store.clock, FixedClock)
    return History(store, store.clock)


async def certify(store: EventStore, unit: str = A, signer: str = "head") -> Certified:
    command = CertifyInventory(unit, uuid4(), signer, signer_name="Μαρία Παπαδοπούλου")
    context = AppendContext(actor=Actor(signer, "certify"), unit_id=unit)

    async def attempt() -> Certified:
        async with store.transaction() as tx:
            return await certify_inventory(
                command, tx=tx, clock=store.clock, context=context, unit=UNIT
            )

    return await certify_with_retries(attempt)


async def count(store: EventStore, sql: str, *params: Any) -> int:
    async with store.pool.connection() as connection:
        cursor = await connection.execute(sql, params)
        row: Any = await cursor.fetchone()
        return int(row[0])


async def add_part(h: History, bundle: UUID, part: UUID, category: str) -> None:
    when = athens("2025-11-20T10:00")
    day = when.date()
    await h.at(
        when,
        str(bundle),
        [
            BundlePartAdded(
                item_id=bundle, unit_id=A, part_item_id=part, part_category_id=category,
                performed_on=day,
            )
        ],
    )  # fmt: skip
    await h.at(
        when,
        str(part),
        [ItemBundled(item_id=part, unit_id=A, bundle_item_id=bundle, performed_on=day)],
    )


async def test_certification_is_refused_with_every_reason(store: EventStore) -> None:
    h = history(store)
    laptop = await h.register(athens("2025-10-01T10:00"), A, LAB, serial="L1")
    workstation = await h.register(athens("2025-10-01T10:05"), A, LAB, category="workstation")
    cpu = await h.register(athens("2025-10-01T10:06"), A, LAB, serial="C1", category="cpu")
    await add_part(h, workstation, cpu, "cpu")  # no monitor: the bundle is flagged
    outgoing = await h.dispatch(athens("2025-11-25T10:00"), laptop, A, B, LAB)
    elsewhere = await h.register(athens("2025-10-01T10:00"), B, f"{B}-L1", serial="B1")
    incoming = await h.dispatch(athens("2025-11-26T10:00"), elsewhere, B, A, f"{B}-L1")
    events_before = await count(store, "SELECT count(*) FROM events")

    with pytest.raises(CertificationRefusedError) as refused:
        await certify(store)

    reasons = refused.value.reasons
    assert sorted((r["reason"], r.get("transfer_id") or r["item_id"]) for r in reasons) == sorted(
        [
            ("transfer-pending", str(outgoing)),
            ("transfer-pending", str(incoming)),
            ("bundle-missing-parts", str(workstation)),
        ]
    )
    flagged = next(r for r in reasons if r["reason"] == "bundle-missing-parts")
    assert flagged["missing_parts"] == {"monitor": 1}
    assert await count(store, "SELECT count(*) FROM events") == events_before
    assert await count(store, "SELECT count(*) FROM certifications") == 0


async def test_hash_recomputed_from_the_export_equals_the_recorded_one(
    store: EventStore, tmp_path: Path
) -> None:
    h = history(store)
    for number in range(5):
        await h.register(athens("2025-10-01T10:00"), A, LAB, serial=f"S{number}")
    await h.register(athens("2025-10-01T10:00"), B, f"{B}-L1", serial="OTHER")

    done = await certify(store)

    document = json.loads(done.export_json)
    assert verify_export(document) == []
    assert content_hash(document["content"]) == done.header.content_hash
    assert done.header.item_count == 5
    recorded = await store.load(f"inventory:{A}")
    assert recorded[-1].type == "InventoryCertified"
    assert recorded[-1].data["content_hash"] == done.header.content_hash
    assert recorded[-1].data["covers_position"] == done.header.covers_position
    assert recorded[-1].data["signer_id"] == "head"
    # Anyone can recompute it offline with the module's command line.
    path = tmp_path / "export.json"
    path.write_text(done.export_json, encoding="utf-8")
    ok = await verify_command(path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert done.header.content_hash in ok.stdout
    # An export whose list was altered no longer verifies.
    document["content"]["items"][0]["location_id"] = OFFICE
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    bad = await verify_command(path)
    assert bad.returncode == 1
    assert "differs from the recorded" in bad.stdout


async def verify_command(path: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m equipment.certexport verify PATH` as another process."""
    command = [sys.executable, "-m", "equipment.certexport", "verify", str(path)]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False
    )


async def test_a_later_change_leaves_the_certification_and_shows_as_changed(
    store: EventStore,
) -> None:
    h = history(store)
    first = await h.register(athens("2025-10-01T10:00"), A, LAB, serial="S1")
    await h.register(athens("2025-10-01T10:00"), A, LAB, serial="S2")
    done = await certify(store)
    url = str(store.pool.conninfo)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        status = await certification_status(connection, A)
        assert status is not None
        assert not status.is_changed_since
        assert status.current_hash == done.header.content_hash

        await h.move(athens("2025-12-02T10:00"), first, A, LAB, OFFICE)

        status = await certification_status(connection, A)
        assert status is not None
        assert status.is_changed_since
        assert status.header == done.header
        stored = await certification.certification_document(
            connection, done.header.certification_id, "export"
        )
    assert stored == done.export_json
    assert verify_export(json.loads(str(stored))) == []
    recorded = await store.load(f"inventory:{A}")
    assert recorded[-1].data["content_hash"] == done.header.content_hash


async def test_pdf_has_the_greek_text_and_the_hash(store: EventStore) -> None:
    h = history(store)
    await h.register(athens("2025-10-01T10:00"), A, LAB, serial="S1")
    done = await certify(store)
    url = str(store.pool.conninfo)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        pdf = await certification.certification_document(
            connection, done.header.certification_id, "pdf"
        )
    assert isinstance(pdf, bytes)
    assert pdf == done.pdf
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in (
        "Βεβαίωση οριστικοποίησης απογραφής εξοπλισμού Τ.Π.Ε.",
        "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ",
        "Μαρία Παπαδοπούλου",
        "Φορητός υπολογιστής",
        "Σε χρήση",
        done.header.content_hash,
    ):
        assert expected in text, expected


async def test_an_item_change_racing_the_certification_is_not_missed(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = history(store)
    item = await h.register(athens("2025-10-01T10:00"), A, LAB, serial="S1")
    render = certpdf.render_certification_pdf
    raced: list[bool] = []

    def render_while_an_item_moves(*args: Any, **kwargs: Any) -> bytes:
        if not raced:
            raced.append(True)
            # Between the fold and the append, another request moves the item and commits.
            with psycopg.connect(str(store.pool.conninfo), autocommit=True) as other:
                other.execute(
                    "SELECT ictc_append(%s::jsonb, 1, now())",
                    (move_request(item),),
                )
        return render(*args, **kwargs)

    monkeypatch.setattr(
        "equipment.certification.render_certification_pdf", render_while_an_item_moves
    )
    done = await certify(store)
    moved = await store.load(str(item))
    assert done.header.covers_position >= moved[-1].position
    assert json.loads(done.export_json)["content"]["items"][0]["location_id"] == OFFICE


def move_request(item: UUID) -> str:
    """Return an `ictc_append` request moving `item` from LAB to OFFICE (another process)."""
    data = {
        "item_id": str(item), "unit_id": A, "from_location_id": LAB, "to_location_id": OFFICE,
        "performed_on": "2025-12-01", "with_bundle_item_id": None,
    }  # fmt: skip
    return json.dumps(
        [
            {
                "stream_id": str(item),
                "expected_version": None,
                "metadata": {"source": "/ictcadastre/equipment"},
                "events": [
                    {
                        "event_id": str(uuid4()),
                        "type": "ItemMoved",
                        "schema_version": 1,
                        "data": data,
                        "unit_id": A,
                        "digest": "00" * 32,
                    }
                ],
            }
        ]
    )


async def test_two_certifications_at_once_are_serialised(store: EventStore) -> None:
    h = history(store)
    await h.register(athens("2025-10-01T10:00"), A, LAB, serial="S1")
    first, second = await asyncio.gather(certify(store), certify(store))
    assert first.header.content_hash == second.header.content_hash
    assert sorted([first.version, second.version]) == [1, 2]
    assert await count(store, "SELECT count(*) FROM certifications") == 2
