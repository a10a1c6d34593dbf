"""The registry-sync worker process: projections, delivery, reconciliation and window closures.

Why this exists: beside the kernel's loops (`shared.worker`: migrations and the projections; this
service publishes no events, so it runs no relay), three loops of its own move the ledger:
- the delivery worker (`registry_sync.delivery`), which pushes versions to the receiver;
- reconciliation: runs asked for through the API (`rs_reconciliations`) and one every
  `reconcile_interval_s`;
- window closures: when a regular window's deadline passes (by the injected clock), every body
  owes its certified report (ad-hoc campaigns do this through their CampaignClosed event).

Usage::

    registry-sync-worker                          # migrate, then everything until SIGTERM
    registry-sync-worker rebuild registry-sync.view
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from registry_sync.delivery import Deliverer
from registry_sync.main import projections
from registry_sync.mapping import load_mapping
from registry_sync.projector import mark_certified_round
from registry_sync.reconcile import mark_for_resend, request_reconciliation, run_requested
from registry_sync.settings import Settings
from registry_sync.views import ledger
from registry_sync.windows import last_closed_regular_window
from shared.clock import Clock, clock_from_env
from shared.db import create_engine, session_factory
from shared.outbox import sleep_or_stop
from shared.worker import run_worker, worker_main

log = structlog.get_logger(__name__)

__all__ = ["close_windows_once", "remap_once", "worker_cli"]


async def close_windows_once(engine: AsyncEngine, clock: Clock) -> bool:
    """Mark the certified round of the last regular window that closed (once); return if new."""
    campaign_id, closed_at = last_closed_regular_window(clock.now())
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        marked = await mark_certified_round(session, campaign_id, closed_at, clock.now())
    if marked:
        log.info("registry_certified_round_marked", campaign=campaign_id)
    return marked


async def remap_once(engine: AsyncEngine, clock: Clock, mapping_version: str) -> int:
    """Make every body pushed under another mapping version owe a new version; return how many."""
    async with engine.begin() as conn:
        stale = (
            await conn.execute(
                select(ledger.c.body_code).where(
                    ledger.c.mapping_version.is_not(None),
                    ledger.c.mapping_version != mapping_version,
                )
            )
        ).scalars()
        codes = list(stale)
    if codes:
        await mark_for_resend(engine, codes, clock.now(), unpark=False)
        log.info("registry_mapping_changed", bodies=len(codes), mapping_version=mapping_version)
    return len(codes)


async def _housekeeping(
    settings: Settings, engine: AsyncEngine, clock: Clock, stop: asyncio.Event
) -> None:
    """Run window closures, requested and scheduled reconciliations until `stop` is set."""
    last_scheduled = clock.now()
    last_window_check = clock.now() - timedelta(days=1)
    async with httpx.AsyncClient(
        base_url=settings.receiver_url, timeout=settings.delivery_timeout_s
    ) as client:
        while not stop.is_set():
            now = clock.now()
            try:
                if (now - last_window_check).total_seconds() >= settings.window_check_interval_s:
                    await close_windows_once(engine, clock)
                    last_window_check = now
                interval = settings.reconcile_interval_s
                if interval > 0 and (now - last_scheduled).total_seconds() >= interval:
                    await request_reconciliation(engine, clock, by="schedule")
                    last_scheduled = now
                while await run_requested(engine, client, clock=clock) is not None:
                    pass
            except Exception as exc:  # the loop must outlive a database outage
                log.warning("registry_housekeeping_failed", error=repr(exc))
            await sleep_or_stop(stop, 1.0)


def worker_cli(settings: Settings, argv: Sequence[str] | None = None) -> int:
    """Run `shared.worker.worker_main`, with delivery and housekeeping beside the projectors."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("migrate", "rebuild", "-h", "--help"):
        return worker_main(
            "registry-sync", settings, topic=None, projections=projections(settings), argv=args
        )
    worker_main(
        "registry-sync", settings, topic=None, projections=projections(settings), argv=["migrate"]
    )
    clock = clock_from_env()
    mapping = load_mapping()
    # One line per push is the delivery log's job (rs_delivery_log), not the process log's.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        engine = create_engine(settings.database_url, pool_size=settings.delivery_concurrency)
        deliverer = Deliverer(
            engine,
            database_url=settings.database_url,
            receiver_url=settings.receiver_url,
            clock=clock,
            mapping=mapping,
            policy=settings.delivery_policy(),
        )
        await remap_once(engine, clock, mapping.version)
        # What start-up loaded lives as long as the process: keep it out of full collections.
        gc.freeze()
        loops = [
            asyncio.create_task(deliverer.run(stop), name="registry-delivery"),
            asyncio.create_task(_housekeeping(settings, engine, clock, stop), name="housekeeping"),
        ]
        try:
            await run_worker(
                "registry-sync", settings, topic=None, projections=projections(settings), stop=stop
            )
        finally:
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
            await engine.dispose()

    asyncio.run(main())
    return 0
