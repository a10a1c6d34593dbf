"""Settings of the service: its database, Kafka and HTTP address, from its prefixed variables."""

from __future__ import annotations

from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings):
    """Everything the units processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("UNITS_")

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it produces `units.events`.
        """
        return (self.units_topic,)
