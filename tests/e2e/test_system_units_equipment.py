"""Two services as real processes, connected only by Kafka: units and equipment.

A ministry administrator registers a school and grants a teacher the `entry` role through the units
API; the units worker relays that to the units topic; the equipment worker folds it into its own
view of units, locations and grants; the teacher then registers an item through the equipment API
and finds it in the school's inventory. Nothing is shared but the topic and the token issuer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx

from shared.devissuer import load_or_create
from shared.events.units import GlobalRole
from tests.conftest import DatabaseFactory, TopicFactory
from tests.e2e.test_units_api_process import free_port

ROOT = Path(__file__).resolve().parents[2]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    processes: list[subprocess.Popen[bytes]],
    timeout_s: float = 60.0,
) -> None:
    """Poll `check` until true; fail if a process dies or time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        assert all(p.poll() is None for p in processes), "a process died"
        try:
            if await check():
                return
        except httpx.TransportError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_a_teacher_granted_in_units_registers_an_item_in_equipment(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    issuer = load_or_create(tmp_path / "issuer")
    units_port, equipment_port = free_port(), free_port()
    topics = {
        "UNITS_TOPIC": await unique_topic("units-events", partitions=6),
        "EQUIPMENT_TOPIC": await unique_topic("equipment-events", partitions=6),
        "COMPLIANCE_TOPIC": await unique_topic("compliance-events", partitions=6),
    }
    env = dict(os.environ)
    for prefix, port, database in (
        ("UNITS", units_port, fresh_database("system_units")),
        ("EQUIPMENT", equipment_port, fresh_database("system_equipment")),
    ):
        env |= {
            f"{prefix}_DATABASE_URL": database,
            f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{prefix}_PORT": str(port),
            f"{prefix}_AUTH_ISSUER": issuer.issuer,
            f"{prefix}_AUTH_AUDIENCE": issuer.audience,
            f"{prefix}_AUTH_JWKS_FILE": str(tmp_path / "issuer" / "jwks.json"),
        }
        env |= {f"{prefix}_{name}": topic for name, topic in topics.items()}
    processes = [
        subprocess.Popen([str(ROOT / ".venv" / "bin" / name)], env=env, cwd=ROOT)  # noqa: ASYNC220  (long-lived children, polled without blocking)
        for name in ("units-worker", "units-api", "equipment-worker", "equipment-api")
    ]
    now = datetime.now(UTC)
    admin = {
        "Authorization": "Bearer "
        + issuer.mint("admin", now=now, roles=[GlobalRole.MINISTRY_ADMIN])
    }
    teacher = {"Authorization": "Bearer " + issuer.mint("teacher-7", now=now)}
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{units_port}", timeout=30) as units,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{equipment_port}", timeout=30
            ) as equipment,
        ):

            async def ready() -> bool:
                answers = [
                    await units.get("/readyz"),
                    await equipment.get("/readyz"),
                    await units.get("/units", headers=admin),
                ]
                return all(a.status_code == 200 for a in answers)

            await eventually(ready, processes)
            for body in (
                {
                    "unit_id": "ypaith",
                    "parent_id": None,
                    "name": "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ",
                    "unit_type": "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ",
                },
                {
                    "unit_id": "0551198",
                    "parent_id": "ypaith",
                    "name": "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ",
                    "unit_type": "ΓΕΝΙΚΟ ΛΥΚΕΙΟ",
                },
            ):
                created = await units.post("/units", json=body, headers=admin)
                assert created.status_code == 201, created.text
            granted = await units.post(
                "/grants",
                headers=admin,
                json={"user_id": "teacher-7", "unit_id": "0551198", "role": "entry"},
            )
            assert granted.status_code == 201, granted.text

            product = await equipment.post(
                "/products",
                headers=admin,
                json={
                    "category_id": "workstation",
                    "manufacturer": "Dell",
                    "model": "OptiPlex 7010",
                },
            )
            assert product.status_code == 201, product.text

            async def school_known() -> bool:
                answer = await equipment.get("/units/0551198/locations", headers=teacher)
                return answer.status_code == 200 and bool(answer.json())

            await eventually(school_known, processes)
            locations = (await equipment.get("/units/0551198/locations", headers=teacher)).json()
            location_id = locations[0]["location_id"]
            item_id = str(uuid4())

            async def registered() -> bool:
                # The grant reaches equipment through Kafka too: 403 until it has.
                answer = await equipment.post(
                    "/items",
                    headers=teacher,
                    json={
                        "item_id": item_id,
                        "unit_id": "0551198",
                        "product_id": product.json()["stream_id"].removeprefix("product:"),
                        "location_id": location_id,
                        "serial_number": "cn-0x7 123",
                    },
                )
                assert answer.status_code in (201, 403), answer.text
                return answer.status_code == 201

            await eventually(registered, processes)

            async def listed() -> bool:
                answer = await equipment.get("/units/0551198/items", headers=teacher)
                assert answer.status_code == 200, answer.text
                return [i["item_id"] for i in answer.json()["items"]] == [item_id]

            await eventually(listed, processes)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.to_thread(process.wait, 30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
