"""The compliance worker process: the kernel's relay and projectors, plus the state publisher.

Why this exists: beside the kernel's loops (`shared.worker`: migrations, the outbox relay to
`compliance.events`, the projections), this service must notice state changes that no event
causes (a deadline passing turns units `missed`), so a loop runs `publish_compliance_changes` for
the campaigns still moving every `publish_interval_s`. Its ledger makes each run idempotent, and
two workers running it at once lose to each other with a version conflict, never duplicate.

Usage::

    compliance-worker                  # migrate, then relay + projectors + publisher
    compliance-worker rebuild compliance.unit-status
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from compliance import handlers
from compliance.commands import PublishComplianceChanges
from compliance.main import SOURCE, open_store, projections
from compliance.settings import Settings
from shared.clock import Clock, clock_from_env
from shared.db import create_engine, session_factory
from shared.eventstore import EventStore, VersionConflictError
from shared.outbox import sleep_or_stop
from shared.worker import run_worker, worker_main

log = structlog.get_logger(__name__)

__all__ = ["SOURCE", "publish_loop", "publish_once", "worker_cli"]


async def publish_once(
    sessions: async_sessionmaker[AsyncSession], store: EventStore, *, clock: Clock
) -> int:
    """Publish the state changes of every campaign still moving; return how many events."""
    total = 0
    for campaign_id in await handlers.campaigns_to_publish(sessions, clock.now()):
        with contextlib.suppress(VersionConflictError):  # another publisher got there first
            total += await handlers.publish_compliance_changes(
                PublishComplianceChanges(campaign_id), store=store, sessions=sessions, clock=clock
            )
    return total


async def publish_loop(settings: Settings, stop: asyncio.Event, *, clock: Clock) -> None:
    """Publish state changes every `settings.publish_interval_s` until `stop` is set."""
    engine = create_engine(settings.database_url, pool_size=2)
    store = await open_store(settings, clock)
    sessions = session_factory(engine)
    try:
        while not stop.is_set():
            try:
                published = await publish_once(sessions, store, clock=clock)
                if published:
                    log.info("compliance_states_published", events=published)
            except Exception as exc:  # the loop must outlive a database outage
                log.warning("compliance_publish_failed", error=repr(exc))
            await sleep_or_stop(stop, settings.publish_interval_s)
    finally:
        await store.close()
        await engine.dispose()


def worker_cli(settings: Settings, argv: Sequence[str] | None = None) -> int:
    """Run `shared.worker.worker_main`, with the publisher beside the relay and projectors."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("migrate", "rebuild", "-h", "--help"):
        return worker_main(
            "compliance", settings, topic=settings.compliance_topic,
            projections=projections(settings), argv=args,
        )  # fmt: skip
    worker_main(
        "compliance", settings, topic=settings.compliance_topic,
        projections=projections(settings), argv=["migrate"],
    )  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()
        publisher = asyncio.create_task(publish_loop(settings, stop, clock=clock_from_env()))
        try:
            await run_worker(
                "compliance", settings, topic=settings.compliance_topic,
                projections=projections(settings), stop=stop,
            )  # fmt: skip
        finally:
            stop.set()
            await publisher

    asyncio.run(main())
    return 0
