"""Shared fixtures: one throwaway PostgreSQL database per run, migrated once; one outer
transaction per test (application commits become savepoints); a unique exchange per run on the
real RabbitMQ."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Engine, Insert, text
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared.auth import Role, mint_token
from shared.contracts.events import EVENTS
from shared.db import create_engine
from shared.outbox import OutboxRecord
from shared.retry import RETRY_DELAYS_SECONDS
from shared.settings import REPO_ROOT, normalize_database_url
from tests.infra import (
    Postgres,
    RabbitMQ,
    describe,
    find_postgres,
    find_rabbitmq,
    unique_name,
    uses_containers,
)


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


def pytest_report_header() -> str:
    return f"infrastructure: {describe()}"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: parallel workers only on containers, where each worker starts servers of its
    own; on shared servers one process, since the broker-restart tests stop the shared broker."""
    return int(os.environ.get("TILBAKE_TEST_WORKERS", "2")) if uses_containers() else 0


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


TEST_RETRY_DELAYS = (0.1, 0.3)  # short waits between a failed handler's attempts, for tests


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
            retries = [
                f"{name}.retry.{int(delay * 1000)}ms" for delay in {*RETRY_DELAYS_SECONDS, *TEST_RETRY_DELAYS}
            ]
            for queue in (name, f"{name}.dead", *retries):
                await channel.queue_delete(queue)
    finally:
        await connection.close()


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may quietly not run. An xdist worker hands its
    event-contract counts to the controller (pytest_testnodedown)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["event_contracts"] = (dict(_event_contracts.validated), _event_contracts.violations)
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow: {_skipped}")


# --- every event the suite produces keeps its contract -------------------------------------------


class EventContractViolation(AssertionError):
    """An outbox row whose ``data`` its event type's contract does not accept."""


@dataclass
class EventContractCheck:
    validated: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    mark: int = 0  # violations before the current test


_event_contracts = EventContractCheck()


def contract_violation(row: OutboxRecord | _Staged) -> str | None:
    """Why ``row`` breaks its event type's contract (strictly: no undeclared field), or None."""
    model = EVENTS.get(row.type)
    if model is None:
        return "no contract in shared.contracts.events has this type"
    if not model.ON_BUS:
        return "a webhook body, which is never published"
    problems = []
    if undeclared := sorted(set(row.data) - set(model.model_fields)):
        problems.append(f"fields {model.__name__} does not declare: {undeclared}")
    try:
        model.model_validate(row.data)
    except ValidationError as exc:
        # Locations and messages only, as MalformedEvent does: no values.
        problems += [f"{'.'.join(map(str, item['loc'])) or 'data'}: {item['msg']}" for item in exc.errors()]
    return "; ".join(problems) or None


@dataclass(frozen=True)
class _Staged:
    """An outbox row inserted by a Core statement (shared.outbox.add_events)."""

    type: str
    subject: str
    data: dict[str, Any]


# Ids of outbox rows checked as they were flushed: the flush's own INSERT is not checked again.
_flushed: set[Any] = set()


def _check_staged_events(session: Session, flush_context: object, instances: object) -> None:
    rows = [row for row in session.new if isinstance(row, OutboxRecord)]
    _flushed.update(row.id for row in rows)
    _check_rows(rows)


def _check_inserted_events(
    connection: object, statement: object, multiparams: Any, params: Any, options: object
) -> None:
    """Outbox rows a Core INSERT stages (the hot paths' batches), checked like flushed ones."""
    table = getattr(statement, "table", None)
    if not isinstance(statement, Insert) or table is None or not str(table.name).endswith("_outbox"):
        return
    rows = [*(multiparams or []), *([params] if params else [])]
    staged = [row for row in rows if "data" in row and row.get("id") not in _flushed]
    _flushed.difference_update(row.get("id") for row in rows)
    _check_rows(_Staged(row["type"], row["subject"], row["data"]) for row in staged)


def _check_rows(rows: Iterable[OutboxRecord | _Staged]) -> None:
    for row in rows:
        if (problem := contract_violation(row)) is None:
            _event_contracts.validated[row.type] += 1
        else:
            message = f"{row.type} (subject {row.subject}) breaks its contract: {problem}"
            _event_contracts.violations.append(message)
            raise EventContractViolation(message)


@pytest.fixture(scope="session", autouse=True)
def event_contracts() -> Iterator[EventContractCheck]:
    """Every outbox row any session flushes or a Core INSERT stages is checked against
    ``EVENTS[row.type]``; a row that breaks its contract raises in the flush or the statement, so
    the test that produced it fails."""
    sa_event.listen(Session, "before_flush", _check_staged_events)
    sa_event.listen(Engine, "before_execute", _check_inserted_events)
    try:
        yield _event_contracts
    finally:
        sa_event.remove(Session, "before_flush", _check_staged_events)
        sa_event.remove(Engine, "before_execute", _check_inserted_events)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _event_contracts.mark = len(_event_contracts.violations)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail the test even where the code under test swallowed the violation (a request answered
    500, a consumer dead-lettered the event)."""
    result = yield
    if broken := _event_contracts.violations[_event_contracts.mark :]:
        raise EventContractViolation("; ".join(broken))
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    validated, violations = getattr(node, "workeroutput", {}).get("event_contracts", ({}, []))
    _event_contracts.validated.update(validated)
    _event_contracts.violations.extend(violations)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    check = _event_contracts
    counts = ", ".join(f"{name} {count}" for name, count in sorted(check.validated.items()))
    terminalreporter.write_line(
        f"event contracts: {check.validated.total()} events of {len(check.validated)} types validated"
        f" ({counts or 'none'}); {len(check.violations)} broke their contract"
    )
