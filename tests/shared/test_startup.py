"""A service whose startup fails (a startup hook raises, e.g. a missing service token in
production) leaves nothing running: the process can exit instead of hanging on its tasks."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter, FastAPI

from case_api.models import CaseOutbox
from shared.app import ServiceParts, build_app
from tests.conftest import test_settings
from tests.infra import RabbitMQ


async def test_a_failing_startup_hook_starts_no_task(
    database_url: str, rabbitmq: RabbitMQ, exchange_name: str
) -> None:
    async def refuse(_app: FastAPI) -> None:
        raise ValueError("CASE_API_SERVICE_TOKEN must be set in production")

    settings = test_settings(
        "case_api.config",
        database_url,
        amqp_url=rabbitmq.url,
        event_exchange=exchange_name,
        outbox_relay_enabled=True,
    )
    parts = ServiceParts(
        name="case-api",
        title="case-api",
        description="",
        version="0",
        api_router=APIRouter(),
        outbox_model=CaseOutbox,
        on_startup=[refuse],
    )
    app = build_app(settings, parts)
    before = asyncio.all_tasks()
    with pytest.raises(ValueError, match="SERVICE_TOKEN"):
        async with app.router.lifespan_context(app):
            pass
    await asyncio.sleep(0)
    left = [task.get_coro() for task in asyncio.all_tasks() - before if not task.done()]
    assert not left, f"still running after a failed startup: {left}"
    await app.state.engine.dispose()
