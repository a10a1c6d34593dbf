"""Operator commands for the local broker: a functional readiness probe, idempotent topic creation.

Why this exists: "the port is open" is not "the broker serves"; a KRaft node accepts connections
before its metadata is loaded. `probe` therefore asks for cluster metadata and needs a broker in the
answer, and `topics` creates the event topics (ARCHITECTURE.md §3), then checks the answer.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python deploy/kafka/admin.py probe  --bootstrap 127.0.0.1:19092 --timeout 5
    .venv/bin/python deploy/kafka/admin.py topics --bootstrap 127.0.0.1:19092 \
        --topics units.events,equipment.events --partitions 6

Notes: exit status 0 means done; 1 means the broker answered with an error; 2, no answer in time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC_ALREADY_EXISTS = 36
# The event topics are the system's history: kept forever, never compacted (ARCHITECTURE.md §3).
EVENT_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


async def _admin(bootstrap: str, timeout_s: float) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="ictc-deploy",
        request_timeout_ms=int(timeout_s * 1000),
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    return admin


async def probe(bootstrap: str, timeout_s: float) -> int:
    """Return 0 once the broker answers a metadata request naming at least one live broker."""
    try:
        admin = await _admin(bootstrap, timeout_s)
    except Exception as exc:
        print(f"probe: no answer from {bootstrap}: {exc!r}", file=sys.stderr)
        return 2
    try:
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception as exc:
        print(f"probe: metadata request failed: {exc!r}", file=sys.stderr)
        return 2
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        print("probe: metadata names no broker yet", file=sys.stderr)
        return 2
    return 0


async def create_topics(
    bootstrap: str, topics: list[str], partitions: int, timeout_s: float
) -> int:
    """Create each missing topic, then check every topic exists with `partitions` partitions."""
    admin = await _admin(bootstrap, timeout_s)
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=EVENT_TOPIC_CONFIG,
                )
                for name in topics
            ],
            timeout_ms=int(timeout_s * 1000),
        )
        failed = False
        for name, code, *rest in response.topic_errors:
            if code == 0:
                print(f"topics: created {name} ({partitions} partitions)")
            elif code == TOPIC_ALREADY_EXISTS:
                print(f"topics: {name} exists")
            else:
                print(f"topics: creating {name} failed: code {code} {rest}", file=sys.stderr)
                failed = True
        # Creation is asynchronous in KRaft: wait until every partition shows a leader.
        deadline = time.monotonic() + timeout_s
        while True:
            described = {t["topic"]: t for t in await admin.describe_topics(topics)}
            missing = [
                name
                for name in topics
                if name not in described
                or described[name]["error_code"] != 0
                or any(p["leader"] < 0 for p in described[name]["partitions"])
            ]
            if not missing:
                break
            if time.monotonic() > deadline:
                print(f"topics: not ready in time: {missing}", file=sys.stderr)
                return 2
            await asyncio.sleep(0.2)
        for name in topics:
            count = len(described[name]["partitions"])
            if count != partitions:
                # Never resize silently: key → partition mapping is part of the ordering contract.
                print(
                    f"topics: {name} has {count} partitions, expected {partitions}", file=sys.stderr
                )
                failed = True
        return 1 if failed else 0
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p_probe = sub.add_parser("probe", help="exit 0 when the broker serves metadata")
    p_probe.add_argument("--bootstrap", required=True)
    p_probe.add_argument("--timeout", type=float, default=5.0)
    p_topics = sub.add_parser("topics", help="create the event topics idempotently")
    p_topics.add_argument("--bootstrap", required=True)
    p_topics.add_argument("--topics", required=True, help="comma-separated names")
    p_topics.add_argument("--partitions", type=int, required=True)
    p_topics.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.command == "probe":
        return asyncio.run(probe(args.bootstrap, args.timeout))
    names = [name.strip() for name in args.topics.split(",") if name.strip()]
    return asyncio.run(create_topics(args.bootstrap, names, args.partitions, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
