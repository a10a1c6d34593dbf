"""Fixtures of registry-sync's integration tests: the reference receiver as a real process."""

from tests.receiver import receiver  # noqa: F401
