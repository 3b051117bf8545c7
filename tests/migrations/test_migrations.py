"""One Alembic history that matches the models and runs both ways on an empty database."""

from __future__ import annotations

import asyncio

import sqlmodel
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.settings import REPO_ROOT
from tests.conftest import alembic_config, create_database, drop_database, run_alembic
from tests.infra import Postgres, unique_name


def test_history_has_a_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    assert len(script.get_heads()) == 1


def test_revision_files_are_dated() -> None:
    files = sorted((REPO_ROOT / "migrations" / "versions").glob("*.py"))
    assert files
    assert all(f.name[:10].count("-") == 2 and f.name[:4].isdigit() for f in files)


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, sqlmodel.SQLModel.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_upgrade_downgrade_upgrade_on_an_empty_database(postgres: Postgres) -> None:
    name = unique_name("tilbake_migrate")
    url = await create_database(postgres, name)
    engine = create_engine(url)
    try:
        await asyncio.to_thread(run_alembic, command.upgrade, url, "head")
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert {"case_outbox", "agreement_organization", "notify_inbox"} <= tables
        owners = {table.split("_")[0] for table in tables - {"alembic_version"}}
        assert owners == {"case", "agreement", "notify"}, "every table carries its service's prefix"

        await asyncio.to_thread(run_alembic, command.downgrade, url, "base")
        async with engine.connect() as connection:
            left = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert left <= {"alembic_version"}

        await asyncio.to_thread(run_alembic, command.upgrade, url, "head")
    finally:
        await engine.dispose()
        await drop_database(postgres, name)
