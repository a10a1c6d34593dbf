"""A circuit breaker for the registry receiver: stop hammering it while it is down.

Why this exists: when the receiver is down, every body's delivery would fail, back off and count
attempts toward parking, and the worker would spend its time on connection errors. After
`threshold` consecutive failures the breaker opens: no delivery is attempted for `cooldown`
(doubling per failed probe up to `max_cooldown`); then one probe is let through (half-open). A
success closes it; a failure reopens it. Time comes from the injected clock.

Usage::

    breaker = CircuitBreaker(clock=clock, threshold=5, cooldown=timedelta(seconds=2))
    if breaker.allow():
        ok = await push()
        breaker.record_success() if ok else breaker.record_failure()
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from shared.clock import Clock


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with exponential cooldown and a single probe."""

    def __init__(
        self,
        *,
        clock: Clock,
        threshold: int = 5,
        cooldown: timedelta = timedelta(seconds=2),
        max_cooldown: timedelta = timedelta(seconds=60),
    ) -> None:
        self._clock = clock
        self._threshold = threshold
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._cooldown = cooldown
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probing = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        """Return the state now (an open breaker turns half-open once its cooldown passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock.now() >= self._opened_at + self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_at(self) -> datetime | None:
        """Return when an open breaker lets the next probe through (None when closed)."""
        return None if self._opened_at is None else self._opened_at + self._cooldown

    def allow_any(self) -> bool:
        """Return whether an attempt could be allowed now (without taking the probe)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def allow(self) -> bool:
        """Return whether a delivery may be attempted now (half-open: only the one probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def is_probe(self) -> bool:
        """Return whether the attempt allowed last is the half-open probe."""
        return self._probing

    def release_probe(self) -> None:
        """The probe allowed last ended without a verdict (nothing to send after all, or an error
        of ours, not the receiver's): let the next attempt be the probe, cooldown unchanged.

        No-op unless a probe is out (a probe that recorded success or failure is no longer out).
        """
        self._probing = False

    def record_success(self) -> None:
        """A delivery reached the receiver: close."""
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self._cooldown = self._base_cooldown

    def record_failure(self) -> None:
        """A delivery failed for the receiver's sake (5xx, timeout, connection): count it."""
        if self._probing:
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self._max_cooldown)
            self._opened_at = self._clock.now()
            return
        self._failures += 1
        if self._opened_at is None and self._failures >= self._threshold:
            self._opened_at = self._clock.now()
            self.opened_count += 1
