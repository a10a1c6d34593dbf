"""The units API and worker as real processes: a signed-in administrator registers a unit and reads
it back through the read model the worker folds from Kafka."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shared.devissuer import load_or_create
from shared.events.units import GlobalRole
from tests.conftest import DatabaseFactory, TopicFactory

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually_serving(
    client: httpx.AsyncClient, processes: list[subprocess.Popen[bytes]], headers: dict[str, str]
) -> None:
    """Wait until the API is ready and the worker has migrated (a query then answers 200)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        assert all(p.poll() is None for p in processes), "a process died"
        try:
            ready = (await client.get("/readyz")).status_code == 200
            if ready and (await client.get("/units", headers=headers)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "never ready"
        await asyncio.sleep(0.2)


async def test_units_api_and_worker_register_and_read_a_unit(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    issuer = load_or_create(tmp_path / "issuer")
    port = free_port()
    env = {
        **os.environ,
        "UNITS_DATABASE_URL": fresh_database("units_api_process"),
        "UNITS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "UNITS_UNITS_TOPIC": await unique_topic("units-events", partitions=6),
        "UNITS_PORT": str(port),
        "UNITS_AUTH_ISSUER": issuer.issuer,
        "UNITS_AUTH_AUDIENCE": issuer.audience,
        "UNITS_AUTH_JWKS_FILE": str(tmp_path / "issuer" / "jwks.json"),
    }
    worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "units-worker")], env=env, cwd=ROOT)  # noqa: ASYNC220  (long-lived children, polled without blocking)
    api = subprocess.Popen([str(ROOT / ".venv" / "bin" / "units-api")], env=env, cwd=ROOT)  # noqa: ASYNC220
    token = issuer.mint("admin", now=datetime.now(UTC), roles=[GlobalRole.MINISTRY_ADMIN])
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=70) as client:
            await eventually_serving(client, [worker, api], headers)
            created = await client.post(
                "/units",
                json={"unit_id": "ypaith", "parent_id": None, "name": "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ",
                      "unit_type": "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"},
                headers=headers,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                # The API waits (bounded: 5 s) for the read model; a busy machine may need longer,
                # and then it answers 503 read-model-lagging, which a client retries.
                read = await client.get(
                    "/units/ypaith",
                    params={"min_position": created.json()["position"]},
                    headers=headers,
                )
                if read.status_code != 503 or asyncio.get_running_loop().time() > deadline:
                    break
                assert read.json()["type"].endswith("/read-model-lagging"), read.text
            assert read.status_code == 200, read.text
            assert read.json()["name"] == "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"
        for process in (api, worker):
            process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
        await asyncio.to_thread(api.wait, 30)
    finally:
        for process in (api, worker):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
