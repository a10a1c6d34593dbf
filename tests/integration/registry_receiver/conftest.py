"""The `receiver` fixture (a real receiver process per test) for this folder's tests."""

from tests.receiver import receiver  # noqa: F401  (a fixture: pytest finds it by name)
