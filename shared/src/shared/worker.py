"""The worker process every service runs beside its API: migrations, outbox relay, projectors.

Why this exists: each service's background work has the same shape (ARCHITECTURE.md §4): bring its
database to the current schema, relay its outbox to its topic, and keep its read models folded from
the topics it consumes. A service's `main.run_worker_cli` names its topic and projections and hands
over to `worker_main`; this module wires logging, telemetry and signals, so Ctrl-C or SIGTERM stops
every loop cleanly (each batch either commits whole or not at all).

Usage::

    <service>-worker                     # migrate, then relay + projectors until SIGTERM/SIGINT
    <service>-worker rebuild <name>      # replay projection <name> from offset 0 and swap it in
    <service>-worker migrate             # only apply migrations

Notes: the relay runs in every worker but publishes from one at a time (advisory lock); projectors
scale out with topic partitions through their consumer group.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Protocol

import structlog

from shared.consumer import Projection, ProjectorRunner, rebuild
from shared.db import create_engine
from shared.logging import configure_logging
from shared.migrate import service_versions_dir, upgrade
from shared.outbox import OutboxRelay
from shared.telemetry import configure_telemetry

log = structlog.get_logger(__name__)


class WorkerSettings(Protocol):
    """What a worker needs: its database and the brokers (every service's Settings has them)."""

    @property
    def database_url(self) -> str:
        """The service's own database (psycopg 3 URL)."""
        ...

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The brokers."""
        ...


async def run_worker(
    service: str,
    settings: WorkerSettings,
    *,
    topic: str | None,
    projections: Sequence[Projection],
    stop: asyncio.Event | None = None,
) -> None:
    """Run the outbox relay (if the service produces `topic`) and every projection until stopped."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    engine = create_engine(settings.database_url)
    tasks = [
        asyncio.create_task(
            ProjectorRunner(
                projection, engine=engine, bootstrap_servers=settings.kafka_bootstrap_servers
            ).run(stop),
            name=f"projector:{projection.name}",
        )
        for projection in projections
    ]
    if topic is not None:
        relay = OutboxRelay(
            settings.database_url,
            topic=topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            source=f"/ictcadastre/{service}",
        )
        tasks.append(asyncio.create_task(relay.run(stop), name=f"relay:{topic}"))
    log.info("worker_started", service=service, tasks=[t.get_name() for t in tasks])
    try:
        await asyncio.gather(*tasks)
    finally:
        await engine.dispose()
        log.info("worker_stopped", service=service)


async def migrate(service: str, settings: WorkerSettings) -> None:
    """Bring the service's database to the newest schema (kernel branch + its own revisions)."""
    versions = service_versions_dir(service.replace("-", "_"))
    await asyncio.to_thread(upgrade, settings.database_url, versions)


def worker_main(
    service: str,
    settings: WorkerSettings,
    *,
    topic: str | None,
    projections: Sequence[Projection],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse the worker's command line and run it (the `<service>-worker` console script)."""
    parser = argparse.ArgumentParser(prog=f"{service}-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="migrate, then relay and project until stopped (default)")
    sub.add_parser("migrate", help="apply migrations and exit")
    replay = sub.add_parser("rebuild", help="replay a projection from offset 0 and swap it in")
    replay.add_argument("projection", choices=[p.name for p in projections])
    args = parser.parse_args(argv)
    configure_logging(service)
    configure_telemetry(f"{service}-worker")

    async def main() -> None:
        await migrate(service, settings)
        if args.command == "migrate":
            return
        if args.command == "rebuild":
            chosen = next(p for p in projections if p.name == args.projection)
            engine = create_engine(settings.database_url)
            try:
                count = await rebuild(
                    chosen, engine=engine, bootstrap_servers=settings.kafka_bootstrap_servers
                )
            finally:
                await engine.dispose()
            log.info("rebuild_done", projection=chosen.name, events=count)
            return
        await run_worker(service, settings, topic=topic, projections=projections)

    asyncio.run(main())
    return 0
