from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from fastapi import FastAPI

from notify_worker import __version__
from notify_worker.api import api_router
from notify_worker.clients import cached, clients_from_settings
from notify_worker.config import Settings, get_settings
from notify_worker.consumer import make_handler
from notify_worker.deliveries.dispatcher import Dispatcher
from notify_worker.deliveries.sender import WebhookSender
from notify_worker.metrics import RefreshOnScrape
from notify_worker.models import NotifyOutbox
from notify_worker.notices.service import Ports
from shared.app import Consumer, ServiceParts, build_app
from shared.bus import MessageBus
from shared.ssrf import UrlPolicy

DESCRIPTION = """
Consumes case and agreement events and makes sure the home municipality and NAV are told before
the release date, with signed webhook notices, receipts, escalation and dead letters. This HTTP
surface is for operators: the notices and deliveries with their attempt history, redelivery of
dead letters, health, readiness and metrics.
"""


def create_app(settings: Settings | None = None, *, bus: MessageBus | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def open_ports(app: FastAPI) -> None:
        agreements, cases = clients_from_settings(settings)
        app.state.ports = Ports(agreements=agreements, cases=cases)
        # One endpoint cache for the delivery loop and the consumer, which drops its answers on
        # every endpoint event.
        app.state.endpoints = cached(agreements, settings.endpoint_cache_seconds)

    async def close_ports(app: FastAPI) -> None:
        ports = getattr(app.state, "ports", None)
        for port in (ports.agreements, ports.cases) if ports is not None else ():
            close = getattr(port, "aclose", None)
            if close is not None:
                await close()

    async def start_dispatcher(app: FastAPI) -> None:
        if not settings.dispatch_enabled:
            return
        sender = WebhookSender(
            connect_timeout=settings.delivery_connect_timeout_seconds,
            read_timeout=settings.delivery_read_timeout_seconds,
            policy=UrlPolicy.from_settings(settings),
        )
        longest = (  # the connect timeout twice: resolving the host for the URL check, then connecting
            settings.http_timeout_seconds
            + 2 * settings.delivery_connect_timeout_seconds
            + 2 * settings.delivery_read_timeout_seconds
        )
        dispatcher = Dispatcher(
            app.state.sessionmaker,
            app.state.endpoints,
            sender,
            facts=app.state.ports.cases,
            case_api_public_url=settings.case_api_public_url,
            retry_schedule=settings.retry_schedule(),
            claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
            lease=timedelta(seconds=longest + settings.lease_margin_seconds),
            escalation_interval=timedelta(seconds=settings.escalation_interval_seconds),
            failure_period=settings.endpoint_failure_period(),
            batch_size=settings.dispatch_batch_size,
            concurrency=settings.delivery_concurrency,
            endpoint_concurrency=settings.delivery_endpoint_concurrency,
        )
        app.state.dispatcher = dispatcher
        task = asyncio.create_task(dispatcher.run(settings.dispatch_interval_seconds))
        app.state.dispatcher_task = task

        async def dispatching() -> None:
            if task.done():
                raise RuntimeError("the delivery loop has stopped")

        app.state.readiness_checks["dispatcher"] = dispatching

    async def stop_dispatcher(app: FastAPI) -> None:
        dispatcher: Dispatcher | None = getattr(app.state, "dispatcher", None)
        task: asyncio.Task[None] | None = getattr(app.state, "dispatcher_task", None)
        if dispatcher is None or task is None:
            return
        # SIGTERM: the attempts in flight are finished and recorded; a lease cut short by the grace
        # period runs out and the delivery is retried with the same webhook-id.
        dispatcher.stop()
        await asyncio.wait([task], timeout=settings.shutdown_grace_seconds)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatcher.sender.aclose()

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
            make_handler=lambda app: make_handler(
                app.state.sessionmaker, app.state.ports, app.state.endpoints
            ),
        ),
        on_startup=[open_ports, start_dispatcher],
        on_shutdown=[close_ports, stop_dispatcher],
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        openapi_tags=[
            {"name": "notices", "description": "Notices, deliveries and attempts; redelivery for operators."},
            {"name": "receipts", "description": "Receipts from recipients: received, accepted, rejected."},
        ],
    )
    app = build_app(settings, parts, bus=bus)
    app.add_middleware(RefreshOnScrape)
    return app
