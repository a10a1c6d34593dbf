"""Database plumbing: the async engine, sessions, and the declarative base with a naming convention.

Each service owns one PostgreSQL database (ARCHITECTURE.md §2); this module only builds connections
to it. URLs use the psycopg 3 driver: ``postgresql+psycopg://user:pass@host:port/db``.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for read-model tables; constraint names are stable for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, pre_ping: bool = True
) -> AsyncEngine:
    """Return an async engine for `url` (psycopg 3), pre-pinging so PostgreSQL restarts heal.

    `pre_ping=False` saves a round trip per checkout: after a restart, the first statement on a
    stale connection then fails, and the pool drops every connection older than that failure
    (a caller that may retry a read once, as the compliance reports do, heals as well).
    """
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping, echo=echo
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory bound to `engine` that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
