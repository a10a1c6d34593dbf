"""deploy/local.env is the one source of settings: compose, the Procfile and the services agree.

docker-compose.yml cannot run on the machines that run CI (no Docker engine), so this test reads it
and fails when a port, topic, database or variable drifts from deploy/local.env.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from compliance.settings import Settings as ComplianceSettings
from equipment.settings import Settings as EquipmentSettings
from registry_receiver.settings import Settings as ReceiverSettings
from registry_sync.settings import Settings as RegistrySyncSettings
from shared.settings import COMPLIANCE_TOPIC, EQUIPMENT_TOPIC, LOCAL_ENV_FILE, UNITS_TOPIC
from units.settings import Settings as UnitsSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, tuple[str, str, str, Any]] = {
    # compose service → (env prefix, database, package, Settings)
    "units": ("UNITS_", "units", "units", UnitsSettings),
    "equipment": ("EQUIPMENT_", "equipment", "equipment", EquipmentSettings),
    "compliance": ("COMPLIANCE_", "compliance", "compliance", ComplianceSettings),
    "registry-sync": ("REGISTRY_SYNC_", "registry_sync", "registry_sync", RegistrySyncSettings),
}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines the way Make, bash and compose all read them (no quotes, no ${})."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"'$]*", line), f"{path.name}:{number}: {raw!r}"
        key, value = line.split("=", 1)
        assert key not in values, f"{key} is set twice in {path.name}"
        values[key] = value
    return values


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return read_env_file(ROOT / "deploy" / "local.env")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    # Values must be literal, not `${VAR}` that a host environment could silently override;
    # `$$` escapes a shell variable for the container and is allowed.
    assert not re.search(r"(?<!\$)\$\{", text), "docker-compose.yml must not interpolate ${...}"
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def test_settings_module_points_at_local_env() -> None:
    assert LOCAL_ENV_FILE == ROOT / "deploy" / "local.env"


def test_every_service_reads_its_values_from_local_env(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for prefix, _database, _package, settings_class in SERVICES.values():
        for key in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PORT", "HOST"):
            monkeypatch.delenv(prefix + key, raising=False)
        settings = settings_class()
        assert settings.database_url == env[prefix + "DATABASE_URL"]
        assert settings.kafka_bootstrap_servers == env[prefix + "KAFKA_BOOTSTRAP_SERVERS"]
        assert settings.port == int(env[prefix + "PORT"])


def test_process_environment_wins_over_local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITS_PORT", "18001")
    assert UnitsSettings().port == 18001


def test_topics_match_the_contract(env: dict[str, str]) -> None:
    assert env["TOPICS"].split(",") == [UNITS_TOPIC, EQUIPMENT_TOPIC, COMPLIANCE_TOPIC]
    assert int(env["TOPIC_PARTITIONS"]) == 6


def test_database_urls_follow_one_role_per_service(env: dict[str, str]) -> None:
    assert env["DATABASES"].split(",") == [database for _, database, _, _ in SERVICES.values()]
    admin = urlsplit(env["PG_ADMIN_URL"])
    assert (admin.hostname, admin.port) == (env["PG_HOST"], int(env["PG_PORT"]))
    for prefix, database, _package, _settings in SERVICES.values():
        url = urlsplit(env[prefix + "DATABASE_URL"])
        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == (env["PG_HOST"], int(env["PG_PORT"]))
        assert (url.username, url.password, url.path) == (database, database, f"/{database}")
        assert env[prefix + "KAFKA_BOOTSTRAP_SERVERS"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{env['KAFKA_PORT']}"


def test_every_container_shares_the_host_network_and_local_env(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("network_mode") == "host", name
        assert service.get("env_file") == "deploy/local.env", name
        assert "ports" not in service, f"{name}: host networking needs no port mappings"


def test_environment_blocks_never_contradict_local_env(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in env:
                assert str(value) == env[key], f"{name}: {key}={value} but local.env has {env[key]}"


def test_kafka_container_matches_local_broker(compose: dict[str, Any], env: dict[str, str]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.0.2"
    settings = kafka["environment"]
    port, controller = env["KAFKA_PORT"], env["KAFKA_CONTROLLER_PORT"]
    assert settings["KAFKA_LISTENERS"] == (
        f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
    )
    assert settings["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}"
    assert settings["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@127.0.0.1:{controller}"
    assert settings["KAFKA_NUM_PARTITIONS"] == env["TOPIC_PARTITIONS"]
    assert settings["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] in kafka["healthcheck"]["test"][-1]

    topics = compose["services"]["kafka-topics"]
    script = topics["command"][0]
    # The topic names and partition count come from local.env at run time, never from the file.
    for variable in ("$$TOPICS", "$$TOPIC_PARTITIONS", "$$KAFKA_BOOTSTRAP_SERVERS"):
        assert variable in script
    assert "retention.ms=-1" in script
    assert "cleanup.policy=delete" in script


def test_local_broker_template_matches_the_same_settings(env: dict[str, str]) -> None:
    template = (ROOT / "deploy" / "kafka" / "server.properties.template").read_text("utf-8")
    assert "listeners=PLAINTEXT://127.0.0.1:@KAFKA_PORT@" in template
    assert "auto.create.topics.enable=false" in template
    assert "log.retention.hours=-1" in template


def test_postgres_container_matches_local_cluster(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert postgres["environment"]["PGPORT"] == env["PG_PORT"]
    command = " ".join(postgres["command"])
    assert f"port={env['PG_PORT']}" in command
    assert f"listen_addresses={env['PG_HOST']}" in command
    assert env["PG_PORT"] in postgres["healthcheck"]["test"]
    # The same script creates the databases locally and in the container.
    assert any(
        volume.startswith("./deploy/postgres/init-databases.sh:/docker-entrypoint-initdb.d/")
        for volume in postgres["volumes"]
    )


def test_one_container_per_service_built_from_its_dockerfile(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    for name, (prefix, _database, _package, _settings) in SERVICES.items():
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": f"services/{name}/Dockerfile"}
        assert service["command"] == [f"{name}-api"]
        assert (
            f"http://127.0.0.1:{env[prefix + 'PORT']}/readyz" in service["healthcheck"]["test"][-1]
        )
        dockerfile = (ROOT / "services" / name / "Dockerfile").read_text("utf-8")
        assert f"uv sync --frozen --no-dev --no-editable --package {name}" in dockerfile


def test_procfile_runs_every_service_api_and_worker_and_the_scheduler() -> None:
    procfile = (ROOT / "Procfile").read_text("utf-8")
    entries = dict(
        line.split(":", 1)
        for line in procfile.splitlines()
        if line.strip() and not line.startswith("#")
    )
    expected = {name: f".venv/bin/{name}-api" for name in SERVICES}
    expected |= {f"{name}-worker": f".venv/bin/{name}-worker" for name in SERVICES}
    # The compliance reminders run on their own faust worker (compliance.scheduler).
    expected["compliance-scheduler"] = ".venv/bin/python -m compliance.scheduler"
    # The reference receiver standing in for the national registry (deploy/registry-receiver).
    expected["registry-receiver"] = ".venv/bin/registry-receiver"
    assert {name: command.strip() for name, command in entries.items()} == expected


def test_registry_receiver_runs_on_the_local_env_ports(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    receiver = compose["services"]["registry-receiver"]
    assert receiver["build"] == {
        "context": ".",
        "dockerfile": "deploy/registry-receiver/Dockerfile",
    }
    assert receiver["command"] == ["registry-receiver"]
    assert "depends_on" not in receiver  # a remote system: no PostgreSQL, no Kafka
    admin = f"http://127.0.0.1:{env['REGISTRY_RECEIVER_ADMIN_PORT']}/_admin/healthz"
    assert admin in receiver["healthcheck"]["test"][-1]
    assert env["REGISTRY_SYNC_RECEIVER_URL"] == f"http://127.0.0.1:{env['REGISTRY_RECEIVER_PORT']}"
    database = Path(env["REGISTRY_RECEIVER_DB"])
    assert not database.is_absolute()  # under /app in the image, under the checkout locally
    assert any(
        volume.endswith(f":/app/{database.parent}") for volume in receiver.get("volumes", [])
    )
    dockerfile = (ROOT / "deploy" / "registry-receiver" / "Dockerfile").read_text("utf-8")
    assert "uv sync --frozen --no-dev --no-editable --package registry-receiver" in dockerfile
    settings = ReceiverSettings.from_args([], env)
    assert (settings.port, settings.admin_port, settings.db_path) == (
        int(env["REGISTRY_RECEIVER_PORT"]),
        int(env["REGISTRY_RECEIVER_ADMIN_PORT"]),
        database,
    )
