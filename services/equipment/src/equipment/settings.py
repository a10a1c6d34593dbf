"""Settings of the service: database, Kafka, HTTP address and token issuer, from `EQUIPMENT_*`."""

from __future__ import annotations

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
    # uvicorn worker processes of `equipment-api` (EQUIPMENT_WORKERS). One by default: on the 2-core
    # bench box two or four workers registered fewer items per second than one (back to back:
    # 116/193 vs 239/225 per s), since registrations into a unit serialise on its asset-number row
    # and every append on the log's position row, and the extra processes only add contention for
    # the cores PostgreSQL needs. Each worker has its own pools; every exact rule (serial claims,
    # versions, asset numbers, unit locks) is decided in PostgreSQL, so they share nothing else.
    workers: int = 1

    def worker_count(self) -> int:
        """Return how many API processes to run (at least 1)."""
        return max(1, self.workers)

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it consumes `units.events` and produces `equipment.events`.
        """
        return (
            self.units_topic,
            self.equipment_topic,
        )
