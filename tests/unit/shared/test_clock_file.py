"""The process-level settable clock: `FileClock` and `clock_from_env` (tests and demos only)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from shared.clock import (
    ATHENS,
    CLOCK_FILE_ENV,
    FileClock,
    FixedClock,
    SystemClock,
    clock_from_env,
    parse_clock_value,
    write_clock_file,
)

DECEMBER = datetime(2026, 12, 10, 11, 0, tzinfo=ATHENS)
WALL = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write(path: Path, text: str) -> None:
    """Write any text into the clock file, atomically."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def test_an_instant_in_the_file_stands_still(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write(path, DECEMBER.isoformat())

    clock = FileClock(path)

    assert clock.now() == DECEMBER
    assert clock.now().tzinfo is UTC
    assert clock.now() == clock.now()
    assert clock.today() == date(2026, 12, 10)


def test_an_offset_shifts_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write(path, "-86400\n")
    base = FixedClock(WALL)

    clock = FileClock(path, base=base)
    before = clock.now()
    base.advance(timedelta(minutes=5))

    assert before == WALL - timedelta(days=1)
    assert clock.now() == WALL - timedelta(days=1) + timedelta(minutes=5)
    write(path, "+3600.5")
    assert clock.now() == WALL + timedelta(minutes=5, hours=1, milliseconds=500)


def test_a_rewritten_file_moves_a_running_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write(path, DECEMBER.isoformat())
    clock = FileClock(path)
    assert clock.now() == DECEMBER

    later = datetime(2027, 1, 5, 9, 30, tzinfo=ATHENS)
    write(path, later.isoformat())

    assert clock.now() == later
    assert clock.today(ATHENS) == date(2027, 1, 5)


def test_every_rewrite_is_seen_however_quick_and_alike(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, DECEMBER)
    clock = FileClock(path)
    seen = []

    # Same length every time, faster than the filesystem's clock ticks, inodes free for reuse.
    for minute in range(50):
        instant = DECEMBER + timedelta(minutes=minute)
        write_clock_file(path, instant)
        seen.append(clock.now() == instant)

    assert all(seen)
    assert [p.name for p in tmp_path.iterdir()] == ["clock"]


def test_write_clock_file_writes_instants_and_offsets(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    base = FixedClock(WALL)

    write_clock_file(path, DECEMBER)
    clock = FileClock(path, base=base)
    instant = clock.now()
    write_clock_file(path, timedelta(hours=-2, milliseconds=250))

    assert instant == DECEMBER
    assert clock.now() == WALL - timedelta(hours=2) + timedelta(milliseconds=250)
    with pytest.raises(ValueError, match="aware"):
        write_clock_file(path, datetime(2026, 12, 1))  # noqa: DTZ001  (the naive instant refused)


def test_the_file_is_read_again_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "clock"
    write(path, DECEMBER.isoformat())
    clock = FileClock(path)
    reads: list[Path] = []
    read_text = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]  # passed through

    monkeypatch.setattr(Path, "read_text", counting)
    for _ in range(100):
        clock.now()
    write(path, "2027-01-05T09:30:00+02:00")
    for _ in range(100):
        clock.now()

    assert reads == [path]


def test_a_bad_rewrite_keeps_the_last_good_time_and_warns_once(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write(path, DECEMBER.isoformat())
    clock = FileClock(path)

    with capture_logs() as logs:
        write(path, "next tuesday")
        torn = [clock.now(), clock.now()]
        path.unlink()
        missing = clock.now()
        write(path, "2027-01-05T09:30:00+02:00")
        recovered = clock.now()

    assert torn == [DECEMBER, DECEMBER]
    assert missing == DECEMBER
    assert recovered == datetime(2027, 1, 5, 9, 30, tzinfo=ATHENS)
    assert [entry["event"] for entry in logs] == ["clock_file_unreadable"] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T00:00:00+02:00", datetime(2026, 11, 30, 22, 0, tzinfo=UTC)),
        ("2026-06-30T23:59:59Z", datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)),
        ("  -90 \n", timedelta(seconds=-90)),
        ("+0.25", timedelta(milliseconds=250)),
    ],
)
def test_clock_values_are_aware_instants_or_signed_offsets(
    text: str, expected: datetime | timedelta
) -> None:
    assert parse_clock_value(text) == expected


@pytest.mark.parametrize("text", ["", "2026-12-01T00:00:00", "tomorrow", "+soon", "90"])
def test_other_clock_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"instant|offset"):
        parse_clock_value(text)


def test_a_clock_file_that_cannot_be_read_at_start_is_an_error(tmp_path: Path) -> None:
    naive = tmp_path / "naive"
    write(naive, "2026-12-01T00:00:00")

    with pytest.raises(FileNotFoundError):
        FileClock(tmp_path / "absent")
    with pytest.raises(ValueError, match="UTC offset"):
        FileClock(naive)


def test_without_the_variable_the_process_runs_on_the_wall_clock() -> None:
    with capture_logs() as logs:
        clock = clock_from_env({})
        empty = clock_from_env({CLOCK_FILE_ENV: ""})

    assert isinstance(clock, SystemClock)
    assert isinstance(empty, SystemClock)
    assert logs == []


def test_with_the_variable_the_process_says_its_time_is_not_real(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write(path, DECEMBER.isoformat())

    with capture_logs() as logs:
        clock = clock_from_env({CLOCK_FILE_ENV: str(path)})

    assert isinstance(clock, FileClock)
    assert clock.now() == DECEMBER
    [warning] = logs
    assert warning["log_level"] == "warning"
    assert warning["event"] == "clock_from_file"
    assert "never production" in warning["detail"]
    assert warning["path"] == str(path)
    assert warning["now"] == DECEMBER.astimezone(UTC).isoformat()
