"""Injected time: every service asks a `Clock`, never `datetime.now()`.

Why this exists: compliance windows and "as of" queries are calendar rules in Europe/Athens; tests
must be able to stand on any instant, including the daylight-saving switches around them.

Usage::

    clock = FixedClock(datetime(2026, 12, 1, 0, 0, tzinfo=ATHENS))
    clock.today()          # date(2026, 12, 1), Athens calendar
    clock.now()            # aware UTC datetime

Notes: times are stored in UTC (`…_at`); calendar dates are Athens dates (`…_on`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

ATHENS = ZoneInfo("Europe/Athens")


class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...

    def today(self, tz: ZoneInfo = ATHENS) -> date:
        """Return today's calendar date in `tz` (Athens unless told otherwise)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        return datetime.now(UTC)

    def today(self, tz: ZoneInfo = ATHENS) -> date:
        """Return today's calendar date in `tz`."""
        return self.now().astimezone(tz).date()


class FixedClock:
    """A clock that stands still until told to move: for tests and replays."""

    def __init__(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._instant = instant.astimezone(UTC)

    def now(self) -> datetime:
        """Return the instant the clock stands on, in UTC."""
        return self._instant

    def today(self, tz: ZoneInfo = ATHENS) -> date:
        """Return the calendar date of the instant in `tz`."""
        return self._instant.astimezone(tz).date()

    def set(self, instant: datetime) -> None:
        """Move the clock to `instant` (aware)."""
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._instant = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by `delta`."""
        self._instant += delta


def athens_midnight(day: date) -> datetime:
    """Return the UTC instant at which `day` begins in Athens (local midnight, DST-aware)."""
    return datetime.combine(day, time.min, tzinfo=ATHENS).astimezone(UTC)


def athens_date(instant: datetime) -> date:
    """Return the Athens calendar date of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("athens_date needs an aware datetime")
    return instant.astimezone(ATHENS).date()
