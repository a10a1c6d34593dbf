"""Injected time: every service asks a `Clock`, never `datetime.now()`.

Why this exists: compliance windows and "as of" queries are calendar rules in Europe/Athens; tests
must be able to stand on any instant, including the daylight-saving switches around them.

Usage::

    clock = FixedClock(datetime(2026, 12, 1, 0, 0, tzinfo=ATHENS))
    clock.today()          # date(2026, 12, 1), Athens calendar
    clock.now()            # aware UTC datetime

Notes: times are stored in UTC (`…_at`); calendar dates are Athens dates (`…_on`). A process
builds its clock with `clock_from_env()`: the wall clock, unless ``ICTC_CLOCK_FILE`` names a file
whose contents set this process's time (`FileClock`: end-to-end tests and demos only, never
production; the process logs a warning when it starts on one)::

    write_clock_file(path, datetime(2026, 12, 31, 23, 59, tzinfo=ATHENS))   # every reader moves
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import time_ns
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

log = structlog.get_logger(__name__)

ATHENS = ZoneInfo("Europe/Athens")
CLOCK_FILE_ENV = "ICTC_CLOCK_FILE"


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


class FileClock:
    """A clock set from a file that a test or demo rewrites while the process runs.

    The file holds one value: an aware ISO-8601 instant (``2026-12-10T11:00:00+02:00``: the clock
    stands on it), or a signed offset in seconds from the wall clock (``-86400``, ``+3600.5``: the
    clock runs, shifted). Each reading costs one ``stat``; the file is read again only when its
    modification time, inode or size changed, so rewriting it with `write_clock_file` (a new file
    renamed over it, stamped later than the last) moves the time of every process that reads it.

    Notes: a value that cannot be read when the clock is built is an error; one that cannot be read
    later (the file vanished, a torn write) leaves the clock on its last good value, with a warning.
    """

    def __init__(self, path: Path | str, *, base: Clock | None = None) -> None:
        self._path = Path(path)
        self._base: Clock = base if base is not None else SystemClock()
        self._signature: object = _signature(self._path)
        self._value = parse_clock_value(self._path.read_text(encoding="utf-8"))
        self._refused: object = None  # the signature last refused, to warn once per bad write

    @property
    def path(self) -> Path:
        """Return the file the clock is read from."""
        return self._path

    def now(self) -> datetime:
        """Return the file's instant, or the wall clock shifted by its offset (aware UTC)."""
        self._refresh()
        value = self._value
        return value if isinstance(value, datetime) else self._base.now() + value

    def today(self, tz: ZoneInfo = ATHENS) -> date:
        """Return the calendar date of `now()` in `tz`."""
        return self.now().astimezone(tz).date()

    def _refresh(self) -> None:
        try:
            signature: object = _signature(self._path)
        except OSError as exc:
            self._refuse("missing", exc)
            return
        if signature in (self._signature, self._refused):
            return
        # A rename between the stat and the read only makes the next reading read again.
        try:
            self._value = parse_clock_value(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self._refuse(signature, exc)
            return
        self._signature, self._refused = signature, None

    def _refuse(self, signature: object, exc: Exception) -> None:
        if signature != self._refused:
            log.warning("clock_file_unreadable", path=str(self._path), error=str(exc))
            self._refused = signature


def _signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


def parse_clock_value(text: str) -> datetime | timedelta:
    """Return the instant (aware, UTC) or the offset that a clock file's `text` holds."""
    value = text.strip()
    if value[:1] in ("+", "-"):
        try:
            return timedelta(seconds=float(value))
        except (ValueError, OverflowError):
            raise ValueError(f"not an offset in seconds: {value!r}") from None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not an aware ISO-8601 instant nor a signed offset in seconds: {value!r}"
        ) from None
    if instant.tzinfo is None:
        raise ValueError(f"the instant needs a UTC offset: {value!r}")
    return instant.astimezone(UTC)


def write_clock_file(path: Path | str, value: datetime | timedelta) -> None:
    """Set the time of every `FileClock` reading `path`: an aware instant, or an offset.

    The new value is written to a temporary file renamed over `path` (a reader never sees half of
    it), stamped with a modification time later than the file it replaces: two rewrites within
    one tick of the filesystem's clock, even of the same size on a reused inode, still differ.
    """
    target = Path(path)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a clock file needs an aware instant")
        text = value.isoformat()
    else:
        text = f"{value.total_seconds():+f}"
    try:
        previous = target.stat().st_mtime_ns
    except FileNotFoundError:
        previous = 0
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    stamp = max(time_ns(), previous + 1)
    os.utime(temporary, ns=(stamp, stamp))
    temporary.replace(target)


def clock_from_env(environ: Mapping[str, str] | None = None) -> Clock:
    """Return the process's clock: the wall clock, or a `FileClock` if ``ICTC_CLOCK_FILE`` is set.

    The file clock exists for end-to-end tests and demos that must stand on a chosen day; it is
    never for production, so a process that starts on one says so in its log.
    """
    path = (os.environ if environ is None else environ).get(CLOCK_FILE_ENV, "")
    if not path:
        return SystemClock()
    clock = FileClock(path)
    log.warning(
        "clock_from_file",
        detail=f"{CLOCK_FILE_ENV} is set: this process's time comes from a file (tests and demos "
        "only, never production)",
        path=str(clock.path),
        now=clock.now().isoformat(),
    )
    return clock


def athens_midnight(day: date) -> datetime:
    """Return the UTC instant at which `day` begins in Athens (local midnight, DST-aware)."""
    return datetime.combine(day, time.min, tzinfo=ATHENS).astimezone(UTC)


def athens_date(instant: datetime) -> date:
    """Return the Athens calendar date of an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("athens_date needs an aware datetime")
    return instant.astimezone(ATHENS).date()
