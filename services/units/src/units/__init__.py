"""units service."""
