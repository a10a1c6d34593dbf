"""Settings bases every service composes: database, Kafka and HTTP, read from the environment.

Why this exists: deploy/local.env is the one source of ports, topics and URLs (for make, the
deploy/ scripts, the services and docker-compose). Each service's `Settings` subclasses these bases
with its own env prefix (``UNITS_``, ``EQUIPMENT_``, ...): ``UNITS_DATABASE_URL`` fills
``database_url``.

Usage::

    class Settings(DatabaseSettings, KafkaSettings, HttpSettings):
        model_config = service_settings_config("UNITS_")

Notes: process environment wins over deploy/local.env, which is only a fallback for local runs.
In a container the file is absent (the path resolves inside site-packages) and compose's
`env_file` passes the same values as environment variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# shared/src/shared/settings.py → the repository root, when running from the checkout.
REPO_ROOT = Path(__file__).resolve().parents[3]
LOCAL_ENV_FILE = REPO_ROOT / "deploy" / "local.env"

UNITS_TOPIC = "units.events"
EQUIPMENT_TOPIC = "equipment.events"
COMPLIANCE_TOPIC = "compliance.events"


def service_settings_config(env_prefix: str) -> SettingsConfigDict:
    """Return the settings config of a service whose variables start with `env_prefix`."""
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_file=LOCAL_ENV_FILE,
        env_file_encoding="utf-8",
        # local.env holds every service's keys and the scripts' keys; each service takes its own.
        extra="ignore",
        frozen=True,
    )


class DatabaseSettings(BaseSettings):
    """Where the service's own PostgreSQL database is (psycopg 3 URL)."""

    database_url: str
    database_pool_size: int = 10
    # How long the event store keeps its event loop polling while an append waits for its commit
    # (shared.busypoll: CPU spent for write latency); 0 turns it off.
    database_busy_poll_ms: float = Field(default=2.0, ge=0)


class KafkaSettings(BaseSettings):
    """Where the brokers are, and the names of the event topics (ARCHITECTURE.md §3)."""

    kafka_bootstrap_servers: str
    units_topic: str = UNITS_TOPIC
    equipment_topic: str = EQUIPMENT_TOPIC
    compliance_topic: str = COMPLIANCE_TOPIC


class HttpSettings(BaseSettings):
    """Where the service's HTTP API listens."""

    host: str = "127.0.0.1"
    port: int
