"""equipment service."""
