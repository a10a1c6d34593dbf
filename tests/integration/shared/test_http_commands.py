"""Commands over HTTP on real PostgreSQL and Kafka: idempotency, conflicts, one trace end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import SystemClock
from shared.consumer import ProjectorRunner, wait_for_position
from shared.eventstore import AppendContext, EventStore, StoreTransaction
from shared.idempotency import IdempotencyKeyDep, IfMatchVersion, run_idempotent
from shared.outbox import OutboxRelay
from shared.problems import install_problem_handlers
from shared.telemetry import current_traceparent, instrument_app
from tests.conftest import DatabaseFactory, TopicFactory
from tests.integration.shared.kit import Counted, prepare, projection
from tests.otel import span_exporter


class CountRequest(BaseModel):
    """Body of the test command."""

    amount: int = Field(ge=0, le=1000)


def make_app(store: EventStore) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)

    @app.post("/counters/{stream_id}", status_code=201)
    async def count(
        stream_id: str, body: CountRequest, key: IdempotencyKeyDep, expected_version: IfMatchVersion
    ) -> Response:
        async def command(tx: StoreTransaction) -> tuple[int, dict[str, Any]]:
            tx.append(
                stream_id,
                [Counted(amount=body.amount)],
                expected_version=expected_version,
                context=AppendContext(traceparent=current_traceparent()),
            )
            (result,) = await tx.flush()
            return 201, {
                "stream_id": stream_id,
                "version": result.version,
                "position": result.last_position,
            }

        return await run_idempotent(store, key, command)

    instrument_app(app)
    return app


@pytest_asyncio.fixture(loop_scope="session")
async def setup(
    fresh_database: DatabaseFactory,
) -> AsyncIterator[tuple[str, AsyncEngine, EventStore, httpx.AsyncClient]]:
    url = fresh_database("http_commands")
    engine = await prepare(url)
    store = await EventStore.open(url, source="/tests", clock=SystemClock())
    transport = httpx.ASGITransport(app=make_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield url, engine, store, client
    await store.close()
    await engine.dispose()


async def events_of(engine: AsyncEngine, stream_id: str) -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    text("SELECT count(*) FROM events WHERE stream_id = :s"), {"s": stream_id}
                )
            ).scalar_one()
        )


async def test_a_retry_with_the_same_key_returns_the_first_answer_and_appends_nothing(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
) -> None:
    _, engine, _, client = setup
    headers = {"Idempotency-Key": "phone-retry-1"}
    first = await client.post("/counters/c1", json={"amount": 3}, headers=headers)
    again = await client.post("/counters/c1", json={"amount": 3}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await events_of(engine, "c1") == 1


async def test_the_same_key_with_another_body_is_a_422_problem(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
) -> None:
    _, engine, _, client = setup
    headers = {"Idempotency-Key": "phone-retry-2"}
    assert (
        await client.post("/counters/c2", json={"amount": 1}, headers=headers)
    ).status_code == 201
    other = await client.post("/counters/c2", json={"amount": 2}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await events_of(engine, "c2") == 1


async def test_concurrent_requests_with_one_key_append_once(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
) -> None:
    _, engine, _, client = setup
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(client.post("/counters/c3", json={"amount": 5}, headers=headers) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert await events_of(engine, "c3") == 1


async def test_invalid_body_names_the_field_and_changes_nothing(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
) -> None:
    _, engine, _, client = setup
    answer = await client.post("/counters/c4", json={"amount": -1})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "amount"
    assert await events_of(engine, "c4") == 0


@pytest.mark.parametrize(
    ("headers", "status", "slug"),
    [
        ({"If-Match": '"0"'}, 412, "precondition-failed"),
        ({}, 201, None),
    ],
)
async def test_a_stale_if_match_is_412(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
    headers: dict[str, str],
    status: int,
    slug: str | None,
) -> None:
    _, _, store, client = setup
    stream = f"c5-{status}"
    await store.append(stream, [Counted(amount=1)], expected_version=0)
    answer = await client.post(f"/counters/{stream}", json={"amount": 1}, headers=headers)
    assert answer.status_code == status
    if slug:
        assert answer.json()["type"].endswith(slug)
        assert answer.json()["current_version"] == 1


async def test_one_trace_from_http_through_outbox_and_kafka_to_the_projector(
    setup: tuple[str, AsyncEngine, EventStore, httpx.AsyncClient],
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
    fresh_database: DatabaseFactory,
) -> None:
    url, _, _, client = setup
    exporter = span_exporter()
    exporter.clear()
    topic = await unique_topic("traced", partitions=6)
    view = await prepare(fresh_database("http_commands_view"))
    answer = await client.post("/counters/traced", json={"amount": 7})
    assert answer.status_code == 201
    server_spans = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert server_spans
    trace_id = server_spans[0].context.trace_id

    stop = asyncio.Event()
    relay = OutboxRelay(url, topic=topic, bootstrap_servers=kafka_bootstrap)
    batched_view = await prepare(fresh_database("http_commands_view_batched"))
    runners = [
        ProjectorRunner(
            projection("traced", [topic], batched=False),
            engine=view,
            bootstrap_servers=kafka_bootstrap,
        ),
        ProjectorRunner(
            projection("traced-batched", [topic]),
            engine=batched_view,
            bootstrap_servers=kafka_bootstrap,
        ),
    ]
    tasks = [asyncio.create_task(relay.run(stop))]
    tasks += [asyncio.create_task(runner.run(stop)) for runner in runners]
    try:
        for name, engine in (("traced", view), ("traced-batched", batched_view)):
            await wait_for_position(
                engine,
                name,
                topic=topic,
                stream_id="traced",
                position=answer.json()["position"],
                partitions=6,
                timeout_s=60,
            )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    spans = exporter.get_finished_spans()
    projected = [s for s in spans if s.name == "project Counted"]
    assert projected, "the projector made no span"
    assert {s.context.trace_id for s in projected} == {trace_id}
    # The batch fast path makes one span per batch, linked to the trace of each event in it.
    batches = [s for s in spans if s.name == "project batch"]
    assert any(link.context.trace_id == trace_id for s in batches for link in s.links)
    await view.dispose()
    await batched_view.dispose()
