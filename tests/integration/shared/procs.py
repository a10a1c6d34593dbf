"""Kernel processes run as real subprocesses, so tests can kill -9 them mid-work.

python -m tests.integration.shared.procs relay DATABASE_URL TOPIC BOOTSTRAP
python -m tests.integration.shared.procs projector DATABASE_URL TOPIC BOOTSTRAP NAME BATCH
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import create_async_engine

from shared.consumer import ProjectorRunner
from shared.outbox import OutboxRelay
from tests.integration.shared.kit import projection


async def main(argv: list[str]) -> None:
    """Run the process named by argv[0] until killed."""
    kind, url, topic, bootstrap, *rest = argv
    stop = asyncio.Event()
    if kind == "relay":
        await OutboxRelay(url, topic=topic, bootstrap_servers=bootstrap, batch_size=200).run(stop)
    elif kind == "projector":
        name, batch = rest
        engine = create_async_engine(url)
        runner = ProjectorRunner(
            projection(name, [topic]),
            engine=engine,
            bootstrap_servers=bootstrap,
            batch_size=int(batch),
        )
        await runner.run(stop)
    else:
        raise SystemExit(f"unknown process kind {kind!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
