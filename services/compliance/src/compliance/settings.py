"""Settings of the service: database, Kafka, HTTP address and token issuer, from `COMPLIANCE_*`."""

from __future__ import annotations

from shared.auth import AuthSettings
from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings, AuthSettings):
    """Everything the compliance processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("COMPLIANCE_")

    # Partitions of `compliance.events` (deploy/local.env TOPIC_PARTITIONS): read-your-writes waits
    # on the partition of the campaign's stream.
    compliance_topic_partitions: int = 6
    # The longest a read asked to wait for a write (`?min_position=`) waits for the projection.
    read_wait_timeout_s: float = 5.0
    # How often the worker compares unit states with the last published (UnitComplianceChanged).
    publish_interval_s: float = 5.0
    # HTML report page size (JSON and CSV give every row unless `per_page` is asked).
    report_page_size: int = 200

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it consumes units and equipment events and produces `compliance.events`.
        """
        return (
            self.units_topic,
            self.equipment_topic,
            self.compliance_topic,
        )
