"""A pooled connection the database dropped (a restart, an idle timeout) answers 503 with
Retry-After once, not 500, and the next request gets a fresh connection. The engine does not ping
before each transaction (shared.db.create_engine), so this is the price of a restart."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import auth, running, test_settings

ADMIN = auth("admin")


async def test_a_dropped_connection_answers_503_once_then_recovers(database_url: str) -> None:
    from case_api.main import create_app

    app = create_app(test_settings("case_api.config", database_url))
    async with running(app) as client:
        assert (await client.get("/api/v1/cases", headers=ADMIN)).status_code == 200
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as connection:  # the one pooled connection the request used
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) == pid, "one pooled connection"
        killer = test_settings("case_api.config", database_url)
        from shared.db import create_engine

        other = create_engine(killer.database_url, pool_size=1)
        try:
            async with other.connect() as connection:
                assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await other.dispose()

        lost = await client.get("/api/v1/cases", headers=ADMIN)
        assert lost.status_code == 503, lost.text
        assert lost.headers["retry-after"] == "1"
        assert lost.headers["content-type"].startswith("application/problem+json")
        assert lost.json()["retryable"] is True
        assert (await client.get("/api/v1/cases", headers=ADMIN)).status_code == 200
