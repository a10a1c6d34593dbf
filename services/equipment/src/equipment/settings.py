"""Settings of the service: its database, Kafka and HTTP address, from its prefixed variables."""

from __future__ import annotations

from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings):
    """Everything the equipment processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("EQUIPMENT_")

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it consumes `units.events` and produces `equipment.events`.
        """
        return (
            self.units_topic,
            self.equipment_topic,
        )
