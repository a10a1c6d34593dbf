"""The data app in-process (no sockets): problem+json answers and fault injection decisions."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_receiver.faults import (
    ConnectionDroppedError,
    FaultBoard,
    FaultInjector,
    FaultMode,
    Faults,
)
from registry_receiver.main import create_data_app
from registry_receiver.store import Store
from tests.unit.registry_receiver.builders import key_header, push, row

PROBLEM = "application/problem+json"


class Harness:
    def __init__(self, store: Store, board: FaultBoard, client: httpx.AsyncClient) -> None:
        self.store, self.board, self.client = store, board, client

    async def put(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        code = payload.get("body_code", "0551010")
        return await self.client.put(
            f"/v1/bodies/{code}/table", json=payload, headers=key_header(payload) | headers
        )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store.open(tmp_path / "receiver.sqlite3")
    board = FaultBoard()
    app = FaultInjector(
        create_data_app(store),
        board=board,
        on_push=store.count_received,
        rng=random.Random(7),  # reproducible fault draws
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield Harness(store, board, client)
    store.close()


def fields(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"].endswith("/validation-error")
    return [(e["field"], e["in"]) for e in body["errors"]]


async def test_valid_push_is_applied(harness: Harness) -> None:
    response = await harness.put(push(version=7))
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"


async def test_invalid_push_names_every_field_and_the_missing_header(harness: Harness) -> None:
    payload = push(registry_version="7", rows=[row(quantity=0)], priority=1)
    response = await harness.client.put("/v1/bodies/0551010/table", json=payload)
    assert sorted(fields(response)) == [
        ("Idempotency-Key", "header"),
        ("priority", "body"),
        ("registry_version", "body"),
        ("rows.0.quantity", "body"),
    ]
    assert harness.store.stats().pushes_received == 1
    assert harness.store.stats().pushes_applied == 0


async def test_body_that_is_not_json_is_refused(harness: Harness) -> None:
    response = await harness.client.put(
        "/v1/bodies/0551010/table", content=b"{not json", headers={"Idempotency-Key": "0551010:1"}
    )
    assert fields(response) == [("body", "body")]


async def test_path_and_header_must_agree_with_the_body(harness: Harness) -> None:
    response = await harness.client.put(
        "/v1/bodies/0551011/table", json=push(), headers={"Idempotency-Key": "0551010:2"}
    )
    assert fields(response) == [("body_code", "body"), ("idempotency_key", "body")]


async def test_unknown_body_is_404_problem(harness: Harness) -> None:
    response = await harness.client.get("/v1/bodies/0551010")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith("/body-not-found")


@pytest.mark.parametrize("limit", [0, 5001])
async def test_listing_limit_is_bounded(harness: Harness, limit: int) -> None:
    response = await harness.client.get("/v1/bodies", params={"limit": limit})
    assert fields(response) == [("limit", "query")]


async def test_unknown_route_is_404_problem(harness: Harness) -> None:
    response = await harness.client.get("/v2/bodies")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_fail_answers_the_status_without_applying(harness: Harness) -> None:
    harness.board.current = Faults(mode=FaultMode.FAIL, status=502)
    response = await harness.put(push())
    assert response.status_code == 502
    assert response.headers["content-type"].startswith(PROBLEM)
    assert harness.store.body("0551010") is None


async def test_drop_after_applies_then_answers_nothing(harness: Harness) -> None:
    # Without a socket the fallback runs: a response head, then an error instead of a body.
    harness.board.current = Faults(mode=FaultMode.DROP_AFTER)
    with pytest.raises(ConnectionDroppedError):
        await harness.put(push())
    assert harness.store.stats().applied_per_key == {"0551010:1": 1}


async def test_drop_before_answers_nothing_and_applies_nothing(harness: Harness) -> None:
    harness.board.current = Faults(mode=FaultMode.DROP_BEFORE)
    with pytest.raises(ConnectionDroppedError):
        await harness.put(push())
    assert harness.store.stats().pushes_applied == 0


async def test_probability_strikes_a_fraction_of_requests(harness: Harness) -> None:
    harness.board.current = Faults(mode=FaultMode.FAIL, probability=0.5)
    statuses = [(await harness.client.get("/v1/bodies")).status_code for _ in range(200)]
    assert 60 < statuses.count(503) < 140
    assert statuses.count(503) + statuses.count(200) == 200


async def test_probability_zero_never_strikes(harness: Harness) -> None:
    harness.board.current = Faults(mode=FaultMode.FAIL, probability=0.0)
    statuses = {(await harness.client.get("/v1/bodies")).status_code for _ in range(50)}
    assert statuses == {200}
