"""The receiver's composition root: its sockets and its settings."""

from __future__ import annotations

import socket
from pathlib import Path

from registry_receiver.main import bind
from registry_receiver.settings import Settings


def test_sockets_reuse_their_address_and_say_they_are_tcp() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        # asyncio sets TCP_NODELAY on accepted connections only when the protocol says TCP;
        # without it every answer waits ~40 ms for a delayed ACK.
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_settings_come_from_the_environment() -> None:
    environ = {
        "REGISTRY_RECEIVER_HOST": "0.0.0.0",  # noqa: S104  (a value under test, not a bind)
        "REGISTRY_RECEIVER_PORT": "9000",
        "REGISTRY_RECEIVER_ADMIN_PORT": "9001",
        "REGISTRY_RECEIVER_DB": "/var/lib/receiver.sqlite3",
    }
    assert Settings.from_args([], environ) == Settings(
        host="0.0.0.0",  # noqa: S104
        port=9000,
        admin_port=9001,
        db_path=Path("/var/lib/receiver.sqlite3"),
    )


def test_flags_override_the_environment() -> None:
    environ = {"REGISTRY_RECEIVER_PORT": "9000", "REGISTRY_RECEIVER_DB": "a.sqlite3"}
    settings = Settings.from_args(["--port", "9100", "--db", "b.sqlite3"], environ)
    assert (settings.port, settings.admin_port, settings.db_path) == (9100, 8091, Path("b.sqlite3"))


def test_defaults_match_local_env() -> None:
    settings = Settings.from_args([], {})
    assert (settings.host, settings.port, settings.admin_port) == ("127.0.0.1", 8090, 8091)
    assert settings.db_path == Path(".local/registry-receiver/receiver.sqlite3")
