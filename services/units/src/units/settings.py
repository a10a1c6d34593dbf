"""Settings of the service: its database, Kafka, HTTP address and token issuer, from `UNITS_*`."""

from __future__ import annotations

from shared.auth import AuthSettings
from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings, AuthSettings):
    """Everything the units processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("UNITS_")

    # Partitions of `units.events` (deploy/local.env TOPIC_PARTITIONS): a stream's partition is
    # derived from it, which read-your-writes waits on.
    units_topic_partitions: int = 6
    # The longest a read asked to wait for a write (`?min_position=`) waits for the read model.
    read_wait_timeout_s: float = 5.0

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it produces `units.events`.
        """
        return (self.units_topic,)
