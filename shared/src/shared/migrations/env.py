"""Alembic's environment for every service database: the kernel branch plus the service's own.

Why this exists: one env.py serves all four databases. `shared.migrate` builds the Alembic `Config`
in code (no alembic.ini) with `version_locations` = the kernel's `versions/` and the service's
`services/<svc>/migrations/versions/`, and either hands over an open connection
(`config.attributes["connection"]`) or sets `sqlalchemy.url`.

Notes: `target_metadata` is the kernel's tables and the authorization projection's, for
`alembic revision --autogenerate` comparisons; a service adds its own metadata through
`config.attributes["target_metadata"]`. Each migration runs in its own transaction
(`transaction_per_migration`), so a failing step leaves the database at the previous revision.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine, pool, text

from shared import authz
from shared.migrate import MIGRATION_LOCK_KEY
from shared.schema import kernel_metadata

config = context.config


def _target_metadata() -> list[MetaData]:
    extra = config.attributes.get("target_metadata")
    service = list(extra) if isinstance(extra, list | tuple) else ([extra] if extra else [])
    return [kernel_metadata, authz.metadata, *service]


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=_target_metadata(),
        transaction_per_migration=True,
        compare_type=True,
        **options,
    )


def _run_offline() -> None:
    """Emit the SQL instead of running it (`alembic upgrade --sql`)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    # Workers migrate at startup, so replicas may start together: a session-level advisory lock
    # makes the second wait, then find the database already at head (Alembic itself does not lock).
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run_on(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url: use shared.migrate")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
