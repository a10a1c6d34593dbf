"""Test kit for the certification, as-of and import tests: a migrated store and an event writer.

`History` appends equipment events straight to a real event store at chosen Athens times (a
`FixedClock` moved before each append), so tests can build years of a unit's history quickly and
know exactly when each fact was recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID, uuid4

from shared.clock import ATHENS, FixedClock
from shared.events.base import Event
from shared.events.equipment import (
    InventoryTransferClosed,
    InventoryTransferOpened,
    ItemMoved,
    ItemRegistered,
    ItemTransferAccepted,
    ItemTransferDispatched,
    ItemWithdrawn,
    TransferOutcome,
)
from shared.eventstore import AppendResult, EventStore
from shared.migrate import service_versions_dir, upgrade

SOURCE = "/ictcadastre/equipment"


async def migrated_store(url: str, clock: FixedClock) -> EventStore:
    """Migrate `url` (kernel and equipment revisions) and open an event store on it."""
    await asyncio.to_thread(upgrade, url, service_versions_dir("equipment"))
    return await EventStore.open(url, source=SOURCE, clock=clock)


def athens(text: str) -> datetime:
    """Return the aware instant of an Athens wall-clock time written `YYYY-MM-DDTHH:MM[:SS]`."""
    return datetime.fromisoformat(text).replace(tzinfo=ATHENS)


@dataclass
class History:
    """Appends events to `store` at chosen instants; remembers each item's stream version."""

    store: EventStore
    clock: FixedClock
    versions: dict[UUID, int] = field(default_factory=dict)

    async def at(self, instant: datetime, stream: str, events: Sequence[Event]) -> AppendResult:
        """Append `events` to `stream` as recorded at `instant`."""
        self.clock.set(instant)
        return await self.store.append(stream, events, expected_version=None)

    async def register(
        self,
        instant: datetime,
        unit_id: str,
        location_id: str,
        *,
        serial: str | None = None,
        asset: str | None = None,
        category: str = "laptop",
        item_id: UUID | None = None,
    ) -> UUID:
        """Register an item of `unit_id` at `instant`; return its id."""
        item = item_id or uuid4()
        await self.at(
            instant,
            str(item),
            [
                ItemRegistered(
                    item_id=item,
                    unit_id=unit_id,
                    product_id=uuid4(),
                    category_id=category,
                    manufacturer="Dell",
                    model="Latitude 5520",
                    serial_number=serial,
                    asset_number=asset or f"{unit_id}-{str(item)[:6]}",
                    location_id=location_id,
                    performed_on=instant.astimezone(ATHENS).date(),
                )
            ],
        )
        return item

    async def move(self, instant: datetime, item: UUID, unit_id: str, src: str, dst: str) -> None:
        """Move an item within its unit."""
        await self.at(
            instant,
            str(item),
            [
                ItemMoved(
                    item_id=item,
                    unit_id=unit_id,
                    from_location_id=src,
                    to_location_id=dst,
                    performed_on=instant.astimezone(ATHENS).date(),
                )
            ],
        )

    async def dispatch(
        self, instant: datetime, item: UUID, source: str, target: str, location: str
    ) -> UUID:
        """Dispatch an item from `source` to `target`, opening the transfer on both units."""
        transfer = uuid4()
        day = instant.astimezone(ATHENS).date()
        self.clock.set(instant)
        async with self.store.transaction() as tx:
            tx.append(
                str(item),
                [
                    ItemTransferDispatched(
                        item_id=item,
                        unit_id=source,
                        transfer_id=transfer,
                        to_unit_id=target,
                        from_location_id=location,
                        performed_on=day,
                    )
                ],
                expected_version=None,
            )
            for unit in (source, target):
                tx.append(
                    f"inventory:{unit}",
                    [
                        InventoryTransferOpened(
                            unit_id=unit,
                            transfer_id=transfer,
                            item_id=item,
                            from_unit_id=source,
                            to_unit_id=target,
                            performed_on=day,
                        )
                    ],
                    expected_version=None,
                )
        return transfer

    async def accept(
        self,
        instant: datetime,
        item: UUID,
        transfer: UUID,
        *,
        source: str,
        target: str,
        location: str,
    ) -> None:
        """Accept a dispatched item into `target` at `location`, closing the transfer."""
        day = instant.astimezone(ATHENS).date()
        self.clock.set(instant)
        async with self.store.transaction() as tx:
            tx.append(
                str(item),
                [
                    ItemTransferAccepted(
                        item_id=item,
                        unit_id=target,
                        transfer_id=transfer,
                        from_unit_id=source,
                        to_location_id=location,
                        performed_on=day,
                    )
                ],
                expected_version=None,
            )
            for unit in (source, target):
                tx.append(
                    f"inventory:{unit}",
                    [
                        InventoryTransferClosed(
                            unit_id=unit,
                            transfer_id=transfer,
                            item_id=item,
                            outcome=TransferOutcome.ACCEPTED,
                            performed_on=day,
                        )
                    ],
                    expected_version=None,
                )

    async def withdraw(self, instant: datetime, item: UUID, unit_id: str) -> None:
        """Withdraw an item by a decision."""
        day: date = instant.astimezone(ATHENS).date()
        await self.at(
            instant,
            str(item),
            [
                ItemWithdrawn(
                    item_id=item,
                    unit_id=unit_id,
                    from_status="in_use",
                    decision_reference="Πρακτικό 12/2025",
                    decided_on=day,
                    performed_on=day,
                )
            ],
        )
