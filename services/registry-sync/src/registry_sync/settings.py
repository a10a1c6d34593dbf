"""Settings of the service: database, Kafka, HTTP, token issuer and the registry receiver."""

from __future__ import annotations

from registry_sync.delivery import DeliveryPolicy
from shared.auth import AuthSettings
from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    service_settings_config,
)


class Settings(DatabaseSettings, KafkaSettings, HttpSettings, AuthSettings):
    """Everything the registry-sync processes read from the environment (or deploy/local.env)."""

    model_config = service_settings_config("REGISTRY_SYNC_")

    # The national registry's endpoint (contract v1); locally the reference receiver.
    receiver_url: str = "http://127.0.0.1:8090"
    delivery_concurrency: int = 16
    delivery_timeout_s: float = 10.0
    # Failed attempts after which a delivery is parked for an operator.
    delivery_max_attempts: int = 8
    delivery_backoff_initial_s: float = 0.5
    delivery_backoff_max_s: float = 300.0
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 2.0
    breaker_max_cooldown_s: float = 60.0
    # How often the whole registry is compared with the ledger (seconds; 0: only on request).
    reconcile_interval_s: float = 3600.0
    # How often the worker checks whether a regular window closed (its certified reports).
    window_check_interval_s: float = 60.0

    def delivery_policy(self) -> DeliveryPolicy:
        """Return the delivery worker's policy from these settings."""
        return DeliveryPolicy(
            concurrency=self.delivery_concurrency,
            timeout_s=self.delivery_timeout_s,
            max_attempts=self.delivery_max_attempts,
            backoff_initial_s=self.delivery_backoff_initial_s,
            backoff_max_s=self.delivery_backoff_max_s,
            breaker_threshold=self.breaker_threshold,
            breaker_cooldown_s=self.breaker_cooldown_s,
            breaker_max_cooldown_s=self.breaker_max_cooldown_s,
        )

    def readiness_topics(self) -> tuple[str, ...]:
        """Return the topics without which the service is not ready.

        Why these: it consumes units, equipment and compliance events.
        """
        return (
            self.units_topic,
            self.equipment_topic,
            self.compliance_topic,
        )
