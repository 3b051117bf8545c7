"""Shared fixtures: one throwaway PostgreSQL database per run, migrated once; one outer
transaction per test (application commits become savepoints); a unique exchange per run on the
real RabbitMQ."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import Role, mint_token
from shared.db import create_engine
from shared.settings import REPO_ROOT, normalize_database_url
from tests.infra import Postgres, RabbitMQ, find_postgres, find_rabbitmq, unique_name


def alembic_config(url: str) -> Config:
    config = Config(toml_file=str(REPO_ROOT / "pyproject.toml"))
    config.attributes["sqlalchemy.url"] = url
    return config


def run_alembic(fn: Callable[..., Any], url: str, *args: Any) -> None:
    """Alembic's env.py runs its own event loop: give it a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fn, alembic_config(url), *args).result()


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def create_database(postgres: Postgres, name: str) -> str:
    admin = await asyncpg.connect(_asyncpg_dsn(postgres.server_url.replace("+asyncpg", "")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return normalize_database_url(postgres.database_url(name))


async def drop_database(postgres: Postgres, name: str) -> None:
    admin = await asyncpg.connect(_asyncpg_dsn(postgres.server_url.replace("+asyncpg", "")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = find_postgres()
    yield server
    if server.container is not None:
        server.container.stop()


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    broker = find_rabbitmq()
    yield broker
    if broker.container is not None:
        broker.container.stop()


@pytest.fixture(scope="session")
async def database_url(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh database for this run, migrated to head once."""
    name = unique_name("tilbake_test")
    url = await create_database(postgres, name)
    await asyncio.to_thread(run_alembic, command.upgrade, url, "head")
    yield url
    await drop_database(postgres, name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection and an outer transaction per test, rolled back at the end."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commit() releases a savepoint inside the test's outer transaction."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def committed_sessionmaker(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Real commits, for tests where several connections or tasks must see the data.

    Every table is emptied afterwards so the next test starts clean."""
    yield async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    async with engine.begin() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        names = ", ".join(f'"{name}"' for name in tables)
        if names:
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(scope="session")
def exchange_name() -> str:
    return unique_name("tilbake.test")


@contextlib.asynccontextmanager
async def running(
    app: FastAPI, *, sessionmaker: async_sessionmaker[AsyncSession] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give a client; optionally bind requests to the test transaction."""
    async with app.router.lifespan_context(app):
        if sessionmaker is not None:
            app.state.sessionmaker = sessionmaker
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def auth(role: Role | str, *, org: str | None = None, **kwargs: Any) -> dict[str, str]:
    """Authorization header with a dev-key token."""
    return {"Authorization": f"Bearer {mint_token(role=role, organization_id=org, **kwargs)}"}


def test_settings(module: str, database_url: str, **overrides: Any) -> Any:
    import importlib

    settings_class = importlib.import_module(module).Settings
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "amqp_url": None,
        "outbox_relay_enabled": False,
    }
    values.update(overrides)
    return settings_class(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
async def agreement_client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    from agreement_api.main import create_app

    app = create_app(test_settings("agreement_api.config", database_url))
    async with running(app, sessionmaker=sessionmaker) as client:
        yield client


@pytest.fixture
async def case_client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    from case_api.main import create_app

    app = create_app(test_settings("case_api.config", database_url))
    async with running(app, sessionmaker=sessionmaker) as client:
        yield client


@pytest.fixture
async def amqp_queues(rabbitmq: RabbitMQ, exchange_name: str) -> AsyncIterator[list[str]]:
    """Names of queues a test declares; they and their dead-letter queues are deleted afterwards."""
    import aio_pika

    names: list[str] = []
    yield names
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        for name in names:
            for queue in (name, f"{name}.dead"):
                await channel.queue_delete(queue)
    finally:
        await connection.close()


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may quietly not run."""
    import os

    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow: {_skipped}")
