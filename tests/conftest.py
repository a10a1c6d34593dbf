"""Shared test fixtures: the real Kafka and PostgreSQL, unique names, per-session databases.

Why this exists: integration and e2e tests run against the genuine broker and database, never fakes
of them. Which ones, in order of preference:

1. the services named by ``TEST_KAFKA_BOOTSTRAP_SERVERS`` / ``TEST_PG_ADMIN_URL`` (``make test``
   sets both from deploy/local.env); a variable that is set but names nothing reachable FAILS
   the run;
2. otherwise, if a Docker engine answers, containers started with testcontainers;
3. otherwise the run fails, saying to run ``make infra-up``.

Infrastructure is requested lazily: a unit test that asks for none of these fixtures needs none.

Usage::

    async def test_round_trip(kafka_bootstrap: str, unique_topic: TopicFactory) -> None:
        topic = await unique_topic("orders", partitions=3)

    def test_store(fresh_database: DatabaseFactory) -> None:
        url = fresh_database("eventstore")      # postgresql+psycopg://…/test_eventstore_<run_id>

Notes: topics made by `unique_topic` are deleted at the end of the session, and databases made by
`fresh_database` are dropped; a crashed run leaves names with its own run id, never another's.
Tests marked ``broker_restart`` are moved to the very end of the run: they restart the broker that
every other test uses.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

KAFKA_ENV = "TEST_KAFKA_BOOTSTRAP_SERVERS"
PG_ENV = "TEST_PG_ADMIN_URL"
HOW_TO_START = "Run `make infra-up` (or `make test`, which starts it) and try again."
EVENT_TOPICS = ("units.events", "equipment.events", "compliance.events")
TOPIC_ALREADY_EXISTS = 36

TopicFactory = Callable[..., Awaitable[str]]
GroupFactory = Callable[[str], str]
DatabaseFactory = Callable[[str], str]

_counter = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that restart the broker after every other test of the session."""
    items.sort(key=lambda item: item.get_closest_marker("broker_restart") is not None)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Return a short suffix unique to this test session, for topic, group and database names."""
    return uuid.uuid4().hex[:8]


def _docker_available() -> bool:
    try:
        from testcontainers.core.docker_client import DockerClient  # noqa: PLC0415  (optional path)

        DockerClient().client.ping()
    except Exception:  # no engine, no socket, no permission: all mean "no Docker"
        return False
    return True


async def _admin(bootstrap: str, timeout_s: float = 10.0) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="tests",
        request_timeout_ms=int(timeout_s * 1000),
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    return admin


async def _require_kafka(bootstrap: str) -> None:
    try:
        admin = await _admin(bootstrap)
        try:
            await asyncio.wait_for(admin.describe_cluster(), 10)
        finally:
            await admin.close()
    except Exception as exc:  # any failure: the configured broker is not usable
        pytest.fail(
            f"{KAFKA_ENV}={bootstrap} but no broker answers there ({exc!r}). {HOW_TO_START}"
        )


async def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = await _admin(bootstrap)
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                pytest.fail(f"creating topic {name} failed: error {code} {rest}")
        # KRaft creates partitions asynchronously: wait (bounded) until each has a leader.
        async with asyncio.timeout(30):
            while True:
                described = await admin.describe_topics(names)
                if all(
                    t["error_code"] == 0
                    and t["partitions"]
                    and all(p["leader"] >= 0 for p in t["partitions"])
                    for t in described
                ):
                    return
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    """Return the bootstrap servers of a real, reachable Kafka broker (see the module docstring)."""
    configured = os.environ.get(KAFKA_ENV)
    if configured:
        await _require_kafka(configured)
        yield configured
        return
    if not await asyncio.to_thread(_docker_available):
        pytest.fail(f"{KAFKA_ENV} is not set and no Docker engine answers. {HOW_TO_START}")
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415  (Docker only)

    container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    await asyncio.to_thread(container.start)
    try:
        bootstrap = str(container.get_bootstrap_server())
        await _require_kafka(bootstrap)
        await _create_topics(bootstrap, list(EVENT_TOPICS), 6)
        yield bootstrap
    finally:
        await asyncio.to_thread(container.stop)


def _require_postgres(url: str) -> None:
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"{PG_ENV}={url} but PostgreSQL does not answer there ({exc}). {HOW_TO_START}")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Return a libpq URL (``postgresql://``) of a superuser on a real, reachable PostgreSQL."""
    configured = os.environ.get(PG_ENV)
    if configured:
        _require_postgres(configured)
        yield configured
        return
    if not _docker_available():
        pytest.fail(f"{PG_ENV} is not set and no Docker engine answers. {HOW_TO_START}")
    from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415  (Docker only)

    with PostgresContainer("postgres:15", driver=None) as container:
        url = str(container.get_connection_url())
        _require_postgres(url)
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def unique_topic(
    kafka_bootstrap: str, run_id: str, _created_topics: list[str]
) -> TopicFactory:
    """Return `make(base, partitions=1)`: create a topic named for this run and return its name."""

    async def make(base: str = "test", partitions: int = 1) -> str:
        name = f"{base}.{run_id}.{next(_counter)}"
        await _create_topics(kafka_bootstrap, [name], partitions)
        _created_topics.append(name)
        return name

    return make


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _created_topics(kafka_bootstrap: str) -> AsyncIterator[list[str]]:
    created: list[str] = []
    yield created
    if created:
        # Left behind, every run's topics would pile up partitions that slow each broker start.
        admin = await _admin(kafka_bootstrap)
        try:
            await admin.delete_topics(created)
        except Exception:  # noqa: S110  (cleanup only; the broker may be gone already)
            pass
        finally:
            await admin.close()


@pytest.fixture
def unique_group(run_id: str) -> GroupFactory:
    """Return `make(base)`: a consumer group id unique to this run and call."""

    def make(base: str = "group") -> str:
        return f"{base}.{run_id}.{next(_counter)}"

    return make


def _with_database(url: str, database: str, *, driver: str | None) -> str:
    parts = urlsplit(url)
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def fresh_database(pg_admin_url: str, run_id: str) -> Iterator[DatabaseFactory]:
    """Return `make(name)`: create database ``test_<name>_<run_id>`` once per session, give its URL.

    The URL uses the psycopg 3 driver (``postgresql+psycopg://``) and the admin's credentials; the
    database is dropped at the end of the session.
    """
    made: dict[str, str] = {}

    def make(name: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
            raise ValueError(f"database base name must be short snake_case: {name!r}")
        if name not in made:
            database = f"test_{name}_{run_id}"
            with psycopg.connect(pg_admin_url, autocommit=True) as connection:
                connection.execute(
                    sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                        sql.Identifier(database)
                    )
                )
            made[name] = database
        return _with_database(pg_admin_url, made[name], driver="psycopg")

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as connection:
        for database in made.values():
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
