"""One Alembic history for all services. Each service owns its tables (prefix case_, agreement_,
notify_); there are no foreign keys across services."""

from __future__ import annotations

import asyncio
import logging
import os

import sqlmodel
from alembic import context
from sqlalchemy.engine import Connection

import agreement_api.models
import case_api.models
import notify_worker.models
from shared.db import create_engine
from shared.logging import configure_logging
from shared.settings import normalize_database_url

_ = (case_api.models, agreement_api.models, notify_worker.models)

config = context.config
if not logging.getLogger().handlers:
    configure_logging(level=os.environ.get("LOG_LEVEL", "INFO"))

target_metadata = sqlmodel.SQLModel.metadata


def _database_url() -> str:
    url = config.attributes.get("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("Set DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/tilbake)")
    return normalize_database_url(url)


def _include_object(obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    """While regenerating one unreleased revision, look only at the tables that revision owns
    (scripts/regenerate_migration.py sets these); otherwise every table counts."""
    include = [p for p in os.environ.get("MIGRATION_INCLUDE_PREFIXES", "").split(",") if p]
    exclude = [p for p in os.environ.get("MIGRATION_EXCLUDE_PREFIXES", "").split(",") if p]
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    if table is None or (not include and not exclude):
        return True
    if include and not table.startswith(tuple(include)):
        return False
    return not (exclude and table.startswith(tuple(exclude)))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()  # also when a revision fails: no pooled connection left open


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection)
else:
    asyncio.run(_run_async())
