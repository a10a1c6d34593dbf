"""registry_sync service."""
