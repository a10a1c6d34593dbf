"""Test kit for the reminder tests: a migrated compliance database whose views are folded from
generated units, equipment and campaign events through the real projector.

Why this exists: the scheduler reads only the compliance read model, so its tests build that model
the way production does, by `compliance.projector.apply_batch` over recorded events, never by
writing view rows by hand. Events are built as `RecordedEvent`s with increasing positions, the
shape the projector receives from Kafka.

Usage::

    db = await ComplianceDb.create(fresh_database("reminders"))
    await db.fold(*small_tree(), certified("0160075", at=...))
    scheduler = db.scheduler(FixedClock(...))
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from uuid import UUID, uuid4, uuid5

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from compliance import projector
from compliance.scheduler import SOURCE, ReminderScheduler
from shared.clock import Clock, FixedClock, athens_date
from shared.db import create_engine, session_factory
from shared.events.base import Event
from shared.events.compliance import ReminderDue
from shared.events.envelope import RecordedEvent
from shared.events.equipment import InventoryCertified
from shared.events.units import UnitRegistered
from shared.eventstore import EventStore
from shared.migrate import service_versions_dir, upgrade

UNITS_SOURCE = "/ictcadastre/units"
EQUIPMENT_SOURCE = "/ictcadastre/equipment"
SINCE = date(2020, 9, 1)
MINISTRY = "0000000"
REGION = "9999903"
DIRECTORATE = "0100105"
OTHER_DIRECTORATE = "0100106"


@dataclass
class Feed:
    """Numbers events the way one topic partition would: positions up, versions per stream."""

    positions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    versions: Counter[str] = field(default_factory=Counter)

    def record(self, event: Event, *, stream_id: str, source: str, at: datetime) -> RecordedEvent:
        """Return `event` as the store would have recorded it at `at`."""
        self.versions[stream_id] += 1
        return RecordedEvent(
            event_id=uuid4(),
            source=source,
            stream_id=stream_id,
            version=self.versions[stream_id],
            position=next(self.positions),
            type=event.type,
            schema_version=event.schema_version,
            data=event.payload(),
            recorded_at=at,
            unit_id=getattr(event, "unit_id", None),
        )


@dataclass
class ComplianceDb:
    """A migrated compliance database: its engine, sessions, event store and an event feed."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    feed: Feed = field(default_factory=Feed)
    stores: list[EventStore] = field(default_factory=list)
    _reader: EventStore | None = None

    @classmethod
    async def create(cls, url: str) -> ComplianceDb:
        """Migrate `url` (kernel branch + compliance revisions) and open it."""
        await asyncio.to_thread(upgrade, url, service_versions_dir("compliance"))
        engine = create_engine(url, pool_size=4)
        return cls(url, engine, session_factory(engine))

    async def close(self) -> None:
        """Close every store opened through the kit and the engine."""
        for store in self.stores:
            await store.close()
        await self.engine.dispose()

    async def store(self, clock: Clock) -> EventStore:
        """Open another handle on the compliance event store (one per simulated process)."""
        store = await EventStore.open(self.url, source=SOURCE, clock=clock, max_size=4)
        self.stores.append(store)
        return store

    async def scheduler(self, clock: Clock, *, batch_size: int = 200) -> ReminderScheduler:
        """Return a scheduler on its own store handle, as a separate process would have."""
        return ReminderScheduler(
            await self.store(clock), self.sessions, clock=clock, batch_size=batch_size
        )

    async def fold(self, *events: tuple[Event, str, str, datetime]) -> None:
        """Fold `(event, stream id, source, recorded at)` tuples through the projector."""
        recorded = [
            self.feed.record(event, stream_id=stream, source=source, at=at)
            for event, stream, source, at in events
        ]
        async with self.sessions() as session, session.begin():
            await projector.apply_batch(recorded, session)

    async def reminders(self) -> list[tuple[RecordedEvent, ReminderDue]]:
        """Return every ReminderDue in the compliance event store, in position order."""
        if self._reader is None:
            self._reader = await self.store(_READER_CLOCK)
        store = self._reader
        found: list[tuple[RecordedEvent, ReminderDue]] = []
        async for recorded in store.iterate():
            event = recorded.event()
            if isinstance(event, ReminderDue):
                found.append((recorded, event))
        return found


_READER_CLOCK = FixedClock(datetime(2020, 1, 1, tzinfo=UTC))  # reading needs no real clock
REGISTERED_AT = datetime(2020, 9, 1, 9, 0, tzinfo=UTC)


def unit(
    unit_id: str,
    parent_id: str | None,
    name: str,
    unit_type: str,
    *,
    email: str | None = None,
    is_holding_node: bool = False,
) -> tuple[Event, str, str, datetime]:
    """Return a UnitRegistered feed entry."""
    event = UnitRegistered(
        unit_id=unit_id,
        parent_id=parent_id,
        name=name,
        unit_type=unit_type,
        registered_on=SINCE,
        email=email,
        mm_id=f"mm{unit_id}",
        is_holding_node=is_holding_node,
    )
    return event, unit_id, UNITS_SOURCE, REGISTERED_AT


def small_tree(
    schools: Sequence[str], other_schools: Sequence[str] = ()
) -> list[tuple[Event, str, str, datetime]]:
    """Return the Ministry, one region, two directorates and their schools (Greek names)."""
    entries = [
        unit(MINISTRY, None, "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ", "ΥΠΟΥΡΓΕΙΟ"),
        unit(REGION, MINISTRY, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΔΥΤΙΚΗΣ ΕΛΛΑΔΑΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ"),
        unit(DIRECTORATE, REGION, "ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΑΙΤΩΛΟΑΚΑΡΝΑΝΙΑΣ", "ΔΙΕΥΘΥΝΣΗ Δ.Ε."),
        unit(OTHER_DIRECTORATE, REGION, "ΔΙΕΥΘΥΝΣΗ Π.Ε. ΑΙΤΩΛΟΑΚΑΡΝΑΝΙΑΣ", "ΔΙΕΥΘΥΝΣΗ Π.Ε."),
    ]
    entries += [
        unit(code, DIRECTORATE, f"{n}ο ΓΥΜΝΑΣΙΟ ΑΓΡΙΝΙΟΥ", "ΓΥΜΝΑΣΙΟ", email=f"{code}@sch.gr")
        for n, code in enumerate(schools, start=1)
    ]
    entries += [
        unit(code, OTHER_DIRECTORATE, f"{n}ο ΔΗΜΟΤΙΚΟ ΑΓΡΙΝΙΟΥ", "ΔΗΜΟΤΙΚΟ")
        for n, code in enumerate(other_schools, start=1)
    ]
    return entries


def certified(unit_id: str, *, at: datetime) -> tuple[Event, str, str, datetime]:
    """Return an InventoryCertified feed entry for `unit_id` at `at`."""
    certification_id = uuid5(UUID(int=0), f"{unit_id}:{at.isoformat()}")
    event = InventoryCertified(
        unit_id=unit_id,
        certification_id=certification_id,
        certified_at=at,
        certified_on=athens_date(at),
        signer_id=f"head-of-{unit_id}",
        item_count=0,
        content_hash=hashlib.sha256(str(certification_id).encode()).hexdigest(),
        covers_position=0,
    )
    return event, f"inventory:{unit_id}", EQUIPMENT_SOURCE, at


def by_stream(found: Iterable[tuple[RecordedEvent, ReminderDue]]) -> Counter[str]:
    """Count reminders per stream (each must be 1)."""
    return Counter(recorded.stream_id for recorded, _ in found)
