from __future__ import annotations

from fastapi import FastAPI

from notify_worker import __version__
from notify_worker.api import api_router
from notify_worker.clients import clients_from_settings
from notify_worker.config import Settings, get_settings
from notify_worker.consumer import make_handler
from notify_worker.handlers import load_handlers
from notify_worker.models import NotifyOutbox
from notify_worker.schedule import Ports
from shared.app import Consumer, ServiceParts, build_app
from shared.bus import MessageBus

DESCRIPTION = """
Consumes case and agreement events and makes sure the home municipality and NAV are told before
the release date, with signed webhook notices, receipts, escalation and dead letters. This HTTP
surface is for operators: health, readiness and metrics.
"""


def create_app(settings: Settings | None = None, *, bus: MessageBus | None = None) -> FastAPI:
    settings = settings or get_settings()
    load_handlers()

    async def open_ports(app: FastAPI) -> None:
        agreements, cases = clients_from_settings(settings)
        app.state.ports = Ports(agreements=agreements, cases=cases)

    async def close_ports(app: FastAPI) -> None:
        ports = getattr(app.state, "ports", None)
        for port in (ports.agreements, ports.cases) if ports is not None else ():
            close = getattr(port, "aclose", None)
            if close is not None:
                await close()

    parts = ServiceParts(
        name="notify-worker",
        title="notify-worker",
        description=DESCRIPTION,
        version=__version__,
        api_router=api_router,
        outbox_model=NotifyOutbox,
        consumer=Consumer(
            queue=settings.queue,
            binding_keys=settings.binding_keys,
            make_handler=lambda app: make_handler(app.state.sessionmaker, app.state.ports),
        ),
        on_startup=[open_ports],
        on_shutdown=[close_ports],
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )
    app = build_app(settings, parts, bus=bus)
    return app
