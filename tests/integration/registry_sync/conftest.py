"""Fixtures of registry-sync's integration tests: the reference receiver as a real process, and
`world`: registry-sync on fresh databases and topics, delivering to that receiver (a test module
that needs another shape, e.g. without the delivery worker, defines its own `world`)."""

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest_asyncio

from tests.conftest import DatabaseFactory
from tests.integration.registry_sync.kit import SyncWorld, fresh_world
from tests.receiver import Receiver, receiver  # noqa: F401


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    run_id: str,
    _created_topics: list[str],
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811  (the fixture imported above)
) -> AsyncIterator[SyncWorld]:
    async with fresh_world(
        f"w{uuid4().hex[:6]}", fresh_database=fresh_database, kafka_bootstrap=kafka_bootstrap,
        run_id=run_id, created_topics=_created_topics, tmp_path=tmp_path,
        receiver_url=receiver.url,
    ) as built:  # fmt: skip
        yield built
