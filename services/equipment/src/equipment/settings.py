"""Settings of the service: database, Kafka, HTTP address and token issuer, from `EQUIPMENT_*`."""

from __future__ import annotations

import os

from shared.auth import AuthSettings
from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings, AuthSettings):
    """Everything the equipment processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("EQUIPMENT_")

    # Partitions of `equipment.events` and `units.events` (deploy/local.env TOPIC_PARTITIONS): a
    # stream's partition is derived from it, which read-your-writes waits on.
    equipment_topic_partitions: int = 6
    units_topic_partitions: int = 6
    # The longest a read asked to wait for a write (`?min_position=`) waits for the read model.
    read_wait_timeout_s: float = 5.0
    # uvicorn worker processes of `equipment-api` (EQUIPMENT_WORKERS): one per CPU unless set. Each
    # has its own connection pools; every rule that must be exact (serial claims, versions, asset
    # numbers, the unit locks) is decided in PostgreSQL, so the processes share nothing else.
    workers: int | None = None

    def worker_count(self) -> int:
        """Return how many API processes to run (at least 1)."""
        return max(1, self.workers if self.workers is not None else (os.cpu_count() or 1))

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it consumes `units.events` and produces `equipment.events`.
        """
        return (
            self.units_topic,
            self.equipment_topic,
        )
