"""Restarting the broker (SIGTERM, then start) keeps every topic, message and committed offset.

This restarts the very broker the whole test run uses, through the project's own scripts
(deploy/kafka-down.sh, deploy/kafka-up.sh). The `broker_restart` marker makes tests/conftest.py run
it after every other test, and each step waits with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from tests.conftest import GroupFactory, TopicFactory
from tests.integration.infra.kafka_helpers import consume, drain
from tests.unit.test_compose_consistency import read_env_file

pytestmark = [pytest.mark.infra, pytest.mark.broker_restart]

ROOT = Path(__file__).resolve().parents[3]
PID_FILE = ROOT / ".local" / "kafka" / "kafka.pid"


async def run_script(name: str, timeout_s: float) -> None:
    """Run deploy/<name> and fail with its output if it fails or overruns."""
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "deploy" / name),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout_s):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"deploy/{name} did not finish within {timeout_s}s")
    assert process.returncode == 0, f"deploy/{name} failed:\n{output.decode(errors='replace')}"


def port_open(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def broker_pid() -> int:
    pid = int(PID_FILE.read_text().strip())
    os.kill(pid, 0)
    return pid


async def write_history(bootstrap: str, topic: str, group: str) -> list[RecordMetadata]:
    """Send 60 keyed messages to `topic` and commit offset 5 on partition 0 for `group`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(topic, key=f"k{n % 7}".encode(), value=str(n).encode())
            for n in range(60)
        ]
    finally:
        await producer.stop()
    member = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group)
    await member.start()
    try:
        await member.commit({TopicPartition(topic, 0): 5})
    finally:
        await member.stop()
    return sent


async def describe(bootstrap: str, topics: list[str]) -> dict[str, dict[str, Any]]:
    """Return the broker's metadata for `topics`, by name."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        return {t["topic"]: t for t in await admin.describe_topics(topics)}
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Return exactly `count` records of `topic` from its beginning; check nothing else is there."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await reader.start()
    try:
        records = await consume(reader, count)
        assert await drain(reader, quiet_s=0.5) == []
    finally:
        await reader.stop()
    return records


async def committed_offset(bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    """Return `group`'s committed offset on `partition`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(partition)
    finally:
        await consumer.stop()
    return offset


async def test_restart_keeps_topics_messages_and_offsets(
    kafka_bootstrap: str, unique_topic: TopicFactory, unique_group: GroupFactory
) -> None:
    env = read_env_file(ROOT / "deploy" / "local.env")
    if kafka_bootstrap != env["KAFKA_BOOTSTRAP_SERVERS"] or not PID_FILE.exists():
        pytest.skip("the broker of this run was not started by deploy/ scripts; cannot restart it")
    pid_before = broker_pid()
    topic = await unique_topic("restart", partitions=3)
    group = unique_group("restart")
    sent = await write_history(kafka_bootstrap, topic, group)

    await run_script("kafka-down.sh", timeout_s=60)
    assert not PID_FILE.exists()
    assert not port_open(kafka_bootstrap)
    await run_script("kafka-up.sh", timeout_s=150)
    assert broker_pid() != pid_before

    topics = await describe(kafka_bootstrap, [topic, *env["TOPICS"].split(",")])
    assert all(t["error_code"] == 0 for t in topics.values()), topics
    assert len(topics[topic]["partitions"]) == 3
    assert all(
        len(t["partitions"]) == int(env["TOPIC_PARTITIONS"])
        for n, t in topics.items()
        if n != topic
    )

    records = await read_all(kafka_bootstrap, topic, len(sent))
    assert sorted((r.partition, r.offset, r.value) for r in records) == sorted(
        (m.partition, m.offset, str(n).encode()) for n, m in enumerate(sent)
    )
    assert await committed_offset(kafka_bootstrap, group, TopicPartition(topic, 0)) == 5
