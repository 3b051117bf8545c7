"""Async database engine, sessions and the one owner of commit.

Requests get a session from :data:`SessionDep`; it commits after the endpoint returns and before
the response is sent (``scope="function"``), so a failed commit can never answer 2xx. Domain code
only flushes. Jobs and consumers use :func:`unit_of_work`. The same code runs on PostgreSQL
(asyncpg) and, for the embedded mode, SQLite (aiosqlite).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, Table, event, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

# Must be set before any table is declared: every models module imports this one first.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

JSONType = JSON().with_variant(JSONB(), "postgresql")


def enum_type(enum_class: type[Enum], *, length: int = 32) -> SAEnum:
    """Store an enum by its value as VARCHAR (no native PostgreSQL enum to migrate)."""
    return SAEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both PostgreSQL and SQLite (which stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# A pooled connection older than this is replaced at its next checkout: connections do not
# outlive a server-side or proxy idle timeout by much, nor keep a restarted server's old session.
POOL_RECYCLE_SECONDS = 1800


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table, for statements that skip the ORM (hot paths)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Build the async engine for a PostgreSQL or SQLite URL.

    No ``pool_pre_ping``: with asyncpg it is three round trips (BEGIN, a ping, ROLLBACK) before
    every transaction, about as many as a whole read request sends otherwise. What it guards
    against is a pooled connection the server has dropped (a restart, an idle timeout). Without
    it, the first statement on such a connection fails, SQLAlchemy sees a disconnect and discards
    every connection of the pool made before it, so a restarted database costs the requests in
    flight at that moment (at most the pool's connections), not one per stale connection later;
    the readiness check (:func:`ping`) fails once and so clears the pool even while no request
    comes. ``pool_recycle`` bounds a connection's age for timeouts nobody reports.

    No overflow: SQLAlchemy closes an overflow connection as soon as it is returned to a full pool,
    so under steady load above the pool size every such request paid a new connection (TCP, the
    TLS offer, authentication); a request beyond the pool waits for one of its connections instead."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, poolclass=NullPool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=POOL_RECYCLE_SECONDS
    )


def insert_ignoring_conflicts(
    session: AsyncSession,
    table: Any,
    values: dict[str, Any] | list[dict[str, Any]] | None,
    *,
    key: list[str],
    where: Any = None,
) -> Any:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for the session's database (PostgreSQL, or SQLite in
    embedded mode); ``where`` names a partial unique index's predicate. Add ``.returning(...)`` to
    learn whether a row was inserted. ``values`` None: the rows come as the execute's parameters
    (one compiled statement for any number of rows)."""
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    if values is not None:
        insert = insert.values(values)
    return insert.on_conflict_do_nothing(index_elements=key, index_where=where)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout waits for the lock instead of
    # failing at once when three services share the embedded database.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction for one job: commit on success, roll back on any error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit runs before the response is sent (FastAPI >= 0.121).
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
request_session = _request_session


# Observers of the statements hot paths send past SQLAlchemy (the benchmark's statement counter).
RAW_STATEMENT_OBSERVERS: list[Callable[[str], None]] = []


class RawConnection:
    """The asyncpg connection under a session's transaction, for hot paths that send their own
    prepared SQL in that same transaction (docs/benchmarks.md)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def fetchrow(self, query: str, *args: Any) -> Any:
        for observe in RAW_STATEMENT_OBSERVERS:
            observe(query)
        return await self._connection.fetchrow(query, *args)


async def asyncpg_connection(session: AsyncSession) -> RawConnection | None:
    """The session's transaction as a :class:`RawConnection`; None on another driver (SQLite in the
    embedded mode)."""
    if session.bind is None or session.bind.dialect.driver != "asyncpg":
        return None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return RawConnection(raw.driver_connection)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
