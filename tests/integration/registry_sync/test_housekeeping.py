"""The worker's housekeeping loop on its own: a scheduled reconciliation finds and repairs a body
altered at the receiver without anyone asking for it.

`registry_sync.worker._housekeeping` is what `registry-sync-worker` runs beside the projections and
the delivery worker; here it runs with a short `reconcile_interval_s` against the real receiver.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select

from registry_sync.views import reconciliations
from registry_sync.worker import _housekeeping, close_windows_once
from shared.clock import SystemClock
from tests.integration.registry_sync.kit import SyncWorld, eventually, item, unit
from tests.receiver import Receiver

pytestmark = pytest.mark.infra

CODE = "0558001"


async def test_a_scheduled_reconciliation_repairs_an_altered_body(
    world: SyncWorld, receiver: Receiver
) -> None:
    await world.emit(world.units, f"unit:{CODE}", [unit(CODE, "ΣΧΟΛΕΙΟ")])
    laptop = item(CODE, "laptop", "HP", "ProBook 450 G9", year=2022)
    await world.emit(world.equipment, str(laptop.item_id), [laptop])
    await close_windows_once(world.engine, SystemClock())  # the last window's round, done before
    await world.settle()
    held = receiver.body(CODE)
    assert held is not None
    receiver.tamper(CODE, [])  # the registry's copy emptied behind our back

    settings = world.settings.model_copy(
        update={"reconcile_interval_s": 0.5, "window_check_interval_s": 3600.0}
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(_housekeeping(settings, world.engine, SystemClock(), stop))
    try:

        async def repaired() -> bool:
            now_held = receiver.body(CODE)
            return bool(
                now_held
                and now_held["rows"]
                and now_held["registry_version"] > held["registry_version"]
            )

        await eventually(repaired, timeout_s=60.0)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    async with world.engine.connect() as conn:
        runs = list(await conn.execute(select(reconciliations)))
    assert any(r.requested_by == "schedule" and r.mismatched >= 1 for r in runs), runs
    await world.settle()
    await world.assert_receiver_holds_our_view(receiver, [CODE])
