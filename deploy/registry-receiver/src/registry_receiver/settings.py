"""Where the receiver listens and stores: environment variables, overridden by command-line flags.

Usage::

    settings = Settings.from_args(["--port", "0"], os.environ)

Notes: REGISTRY_RECEIVER_HOST (127.0.0.1), REGISTRY_RECEIVER_PORT (8090),
REGISTRY_RECEIVER_ADMIN_PORT (8091), REGISTRY_RECEIVER_DB
(.local/registry-receiver/receiver.sqlite3, relative to the working directory). Port 0 picks a
free port (logged at start).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "REGISTRY_RECEIVER_"
DEFAULT_DB = ".local/registry-receiver/receiver.sqlite3"


@dataclass(frozen=True)
class Settings:
    """The receiver's addresses and storage file."""

    host: str = "127.0.0.1"
    port: int = 8090
    admin_port: int = 8091
    db_path: Path = field(default_factory=lambda: Path(DEFAULT_DB))

    @classmethod
    def from_args(cls, argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
        """Return the settings from `environ`, each overridden by its flag in `argv` if given."""
        parser = argparse.ArgumentParser(
            prog="registry-receiver",
            description="Reference receiver of the national registry (contract v1).",
        )
        parser.add_argument("--host", default=environ.get(PREFIX + "HOST", cls.host))
        parser.add_argument("--port", type=int, default=int(environ.get(PREFIX + "PORT", cls.port)))
        parser.add_argument(
            "--admin-port",
            type=int,
            default=int(environ.get(PREFIX + "ADMIN_PORT", cls.admin_port)),
        )
        parser.add_argument("--db", type=Path, default=Path(environ.get(PREFIX + "DB", DEFAULT_DB)))
        args = parser.parse_args(argv)
        return cls(host=args.host, port=args.port, admin_port=args.admin_port, db_path=args.db)
