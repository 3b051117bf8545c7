from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI

from notify_worker import __version__
from notify_worker.api import api_router
from notify_worker.config import Settings, get_settings
from notify_worker.consumer import make_handler
from notify_worker.models import NotifyOutbox
from shared.app import ServiceParts, build_app
from shared.bus import MessageBus

log = structlog.get_logger("notify_worker")

DESCRIPTION = """
Consumes case and agreement events and makes sure the home municipality and NAV are told before
the release date, with signed webhook notices, receipts, escalation and dead letters. This HTTP
surface is for operators: health, readiness and metrics.
"""


def create_app(settings: Settings | None = None, *, bus: MessageBus | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def subscribe_until_connected() -> None:
        delay = 0.5
        while True:
            try:
                await app.state.bus.subscribe(
                    settings.queue, settings.binding_keys, make_handler(app.state.sessionmaker)
                )
                log.info("consumer.started", queue=settings.queue)
                return
            except Exception as exc:
                log.warning("consumer.subscribe_failed", error_class=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def start_consuming(app: FastAPI) -> None:
        # The HTTP surface comes up even while the broker is down (readiness says so).
        task = asyncio.create_task(subscribe_until_connected())
        app.state.subscribe_task = task

        async def consuming() -> None:
            if not task.done() or task.cancelled():
                raise ConnectionError("not consuming yet")

        app.state.readiness_checks["consumer"] = consuming

    async def stop_consuming(app: FastAPI) -> None:
        # SIGTERM: stop taking messages, let in-flight ones commit and ack; the broker
        # redelivers whatever is still unacknowledged after the grace period.
        app.state.subscribe_task.cancel()
        await app.state.bus.stop_consuming(timeout=settings.shutdown_grace_seconds)

    parts = ServiceParts(
        name="notify-worker",
        title="notify-worker",
        description=DESCRIPTION,
        version=__version__,
        api_router=api_router,
        outbox_model=NotifyOutbox,
        on_startup=[start_consuming],
        on_shutdown=[stop_consuming],
    )
    app = build_app(settings, parts, bus=bus)
    return app
