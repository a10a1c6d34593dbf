"""Schema migrations of a service database: the kernel's Alembic branch plus the service's own.

Why this exists: every service database holds the kernel tables (`shared.schema`), the
authorization projection (`shared.authz`) and the service's read models. The kernel's revisions
live in this package (`shared/migrations/versions`, branch label ``kernel``); a service's live in
``services/<svc>/migrations/versions``: a service branch's first revision has
``branch_labels = ("<svc>",)`` and ``depends_on = "<the kernel head it needs>"``, a revision id
(``depends_on = "kernel"`` would name only the branch's first revision, not its head). The Alembic
`Config` is built here, in code: there is no alembic.ini.

Usage::

    upgrade("postgresql+psycopg://units:units@127.0.0.1:55432/units", service_versions(units))
    python -m shared.migrate units upgrade          # also: downgrade [target], current, heads
    make migrate                                    # every service

Notes: the CLI reads ``<SERVICE>_DATABASE_URL`` from the environment, falling back to
deploy/local.env (as the services' settings do), and looks for the service's versions folder under
the checkout, then under the working directory (the images' /app). Alembic runs with the
synchronous psycopg 3 driver; a ``postgresql://`` URL is given that driver.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from shared.settings import REPO_ROOT, DatabaseSettings, service_settings_config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
KERNEL_VERSIONS = MIGRATIONS_DIR / "versions"
KERNEL_BRANCH = "kernel"
# The session advisory lock env.py holds while migrating, so that workers starting together migrate
# one after the other; any constant unique among a database's advisory locks.
MIGRATION_LOCK_KEY = 0x1C7C_0A1E
# Import name → folder under services/ (the folder of registry_sync has a dash).
SERVICES = {
    "units": "units",
    "equipment": "equipment",
    "compliance": "compliance",
    "registry_sync": "registry-sync",
}


def sync_url(database_url: str) -> str:
    """Return `database_url` with the psycopg 3 driver, which Alembic drives synchronously."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg_async"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def alembic_config(database_url: str, service_versions: Path | None = None) -> Config:
    """Return an Alembic config for one database: the kernel's revisions plus a service's."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    locations = [KERNEL_VERSIONS]
    if service_versions is not None and service_versions.is_dir():
        locations.append(service_versions)
    # Split on os.pathsep, so paths with spaces survive.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", _join_paths(locations))
    # ConfigParser interpolation would read a `%` in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def _join_paths(paths: Sequence[Path]) -> str:
    return os.pathsep.join(str(path) for path in paths)


def upgrade(database_url: str, service_versions: Path | None = None, target: str = "heads") -> None:
    """Migrate the database up to `target` (every branch's head by default)."""
    command.upgrade(alembic_config(database_url, service_versions), target)


def downgrade(
    database_url: str, service_versions: Path | None = None, target: str = "base"
) -> None:
    """Migrate the database down to `target` (`base`: no tables left; `<rev>-1`: one step)."""
    command.downgrade(alembic_config(database_url, service_versions), target)


def current(database_url: str, service_versions: Path | None = None) -> None:
    """Print the revisions the database is at."""
    command.current(alembic_config(database_url, service_versions), verbose=False)


def script_directory(service_versions: Path | None = None) -> ScriptDirectory:
    """Return the revision graph (no database needed): the stairway test walks it."""
    return ScriptDirectory.from_config(alembic_config("postgresql://", service_versions))


def service_versions_dir(service: str, roots: Sequence[Path] | None = None) -> Path | None:
    """Return ``services/<svc>/migrations/versions`` of `service` if it exists anywhere we look."""
    folder = SERVICES[service]
    for root in roots if roots is not None else (REPO_ROOT, Path.cwd()):
        candidate = root / "services" / folder / "migrations" / "versions"
        if candidate.is_dir():
            return candidate
    return None


def service_database_url(service: str) -> str:
    """Return ``<SERVICE>_DATABASE_URL`` from the environment or deploy/local.env."""

    class _Settings(DatabaseSettings):
        model_config = service_settings_config(f"{service.upper()}_")

    return _Settings().database_url


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI: ``python -m shared.migrate <service> upgrade|downgrade|current|heads``."""
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__)
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("action", choices=["upgrade", "downgrade", "current", "heads"])
    parser.add_argument(
        "target",
        nargs="?",
        help="revision to go to (upgrade: default `heads`; downgrade: required, e.g. `base`)",
    )
    parser.add_argument("--database-url", help="default: <SERVICE>_DATABASE_URL")
    parser.add_argument("--versions", type=Path, help="the service's versions folder")
    args = parser.parse_args(argv)
    # The process entrypoint configures logging: show Alembic's "Running upgrade a -> b" lines.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.INFO)

    versions: Path | None = args.versions or service_versions_dir(args.service)
    if args.action == "heads":
        for head in script_directory(versions).get_heads():
            print(head)  # noqa: T201  (a CLI's output)
        return 0
    url = args.database_url or service_database_url(args.service)
    if args.action == "upgrade":
        upgrade(url, versions, args.target or "heads")
    elif args.action == "downgrade":
        if not args.target:
            parser.error("downgrade needs a target (`base`, a revision, or `<revision>-1`)")
        downgrade(url, versions, args.target)
    else:
        current(url, versions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
