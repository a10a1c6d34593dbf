"""The circuit breaker's rules (registry_sync.breaker), on a clock that only moves when told.

Threshold of consecutive failures, open (nothing allowed), half-open (exactly one probe), a failed
probe doubling the cooldown up to its maximum, and a success closing it and resetting everything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from registry_sync.breaker import BreakerState, CircuitBreaker
from shared.clock import FixedClock

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
COOLDOWN = timedelta(seconds=2)
MAX_COOLDOWN = timedelta(seconds=7)


def state(made: CircuitBreaker) -> BreakerState:
    """Read the state afresh (a property: mypy would otherwise narrow it across calls)."""
    return made.state


def breaker(clock: FixedClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        clock=clock, threshold=threshold, cooldown=COOLDOWN, max_cooldown=MAX_COOLDOWN
    )


def opened(clock: FixedClock, threshold: int = 3) -> CircuitBreaker:
    made = breaker(clock, threshold)
    for _ in range(threshold):
        made.record_failure()
    assert state(made) is BreakerState.OPEN
    return made


def test_a_new_breaker_is_closed_and_allows_everything() -> None:
    made = breaker(FixedClock(START))
    assert state(made) is BreakerState.CLOSED
    assert made.retry_at() is None
    assert all(made.allow() for _ in range(10))
    assert made.allow_any()
    assert not made.is_probe()
    assert made.opened_count == 0


def test_it_opens_at_the_threshold_of_consecutive_failures_not_before() -> None:
    clock = FixedClock(START)
    made = breaker(clock, threshold=3)
    made.record_failure()
    made.record_failure()
    assert state(made) is BreakerState.CLOSED
    assert made.allow()
    made.record_failure()
    assert state(made) is BreakerState.OPEN
    assert made.opened_count == 1
    assert made.retry_at() == START + COOLDOWN


def test_a_success_in_between_resets_the_count_of_consecutive_failures() -> None:
    made = breaker(FixedClock(START), threshold=3)
    for _ in range(5):
        made.record_failure()
        made.record_failure()
        made.record_success()
    assert state(made) is BreakerState.CLOSED
    assert made.opened_count == 0


def test_an_open_breaker_allows_nothing_until_its_cooldown_passed() -> None:
    clock = FixedClock(START)
    made = opened(clock)
    assert not made.allow()
    assert not made.allow_any()
    clock.advance(COOLDOWN - timedelta(milliseconds=1))
    assert state(made) is BreakerState.OPEN
    assert not made.allow()
    # Failures of deliveries that were already in flight change nothing while it is open.
    made.record_failure()
    assert made.retry_at() == START + COOLDOWN
    assert made.opened_count == 1


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = FixedClock(START)
    made = opened(clock)
    clock.advance(COOLDOWN)
    assert state(made) is BreakerState.HALF_OPEN
    assert made.allow_any()
    assert not made.is_probe()
    assert made.allow()  # the probe
    assert made.is_probe()
    assert state(made) is BreakerState.HALF_OPEN
    assert not made.allow_any()
    assert not any(made.allow() for _ in range(5))  # nobody else while it is out
    clock.advance(timedelta(minutes=5))
    assert not made.allow()  # still only the one probe, however long it takes


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_maximum() -> None:
    clock = FixedClock(START)
    made = opened(clock)
    expected = [COOLDOWN * 2, MAX_COOLDOWN, MAX_COOLDOWN]  # 2 s, 4 s, then 8 s capped at 7 s
    clock.advance(COOLDOWN)
    for cooldown in expected:
        assert made.allow()
        made.record_failure()  # the probe failed
        assert state(made) is BreakerState.OPEN
        assert not made.is_probe()
        assert made.retry_at() == clock.now() + cooldown
        clock.advance(cooldown - timedelta(milliseconds=1))
        assert not made.allow()
        clock.advance(timedelta(milliseconds=1))
        assert state(made) is BreakerState.HALF_OPEN
    assert made.opened_count == 1  # one outage, however many probes failed


def test_a_successful_probe_closes_and_resets_the_cooldown() -> None:
    clock = FixedClock(START)
    made = opened(clock)
    clock.advance(COOLDOWN)
    assert made.allow()
    made.record_failure()  # cooldown now doubled
    clock.advance(COOLDOWN * 2)
    assert made.allow()
    made.record_success()
    assert state(made) is BreakerState.CLOSED
    assert made.retry_at() is None
    assert not made.is_probe()
    assert all(made.allow() for _ in range(5))
    # The next outage starts again from the base cooldown and counts as a new opening.
    for _ in range(3):
        made.record_failure()
    assert state(made) is BreakerState.OPEN
    assert made.retry_at() == clock.now() + COOLDOWN
    assert made.opened_count == 2


def test_a_probe_released_without_a_verdict_lets_the_next_attempt_probe() -> None:
    clock = FixedClock(START)
    made = opened(clock)
    clock.advance(COOLDOWN)
    assert made.allow()  # the probe found nothing to send (or failed on our side)
    made.release_probe()
    assert state(made) is BreakerState.HALF_OPEN
    assert made.allow_any()
    assert made.allow()  # the next attempt is the probe, without another cooldown
    assert not made.allow()
    made.record_success()
    assert state(made) is BreakerState.CLOSED
    made.release_probe()  # no probe out: nothing changes
    assert state(made) is BreakerState.CLOSED
