"""compliance service."""
