"""Builds a service's FastAPI application with everything the services have in common.

Each service's ``create_app()`` calls :func:`build_app` with its settings, its versioned API
router and, where it publishes events, its outbox table. The lifespan owns the engine, the bus,
the token verifier and the outbox relay, so nothing is created at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request

from shared import dead_letters, health
from shared.api_docs import install_api_docs
from shared.auth import TokenVerifier
from shared.body_limit import install_body_limit
from shared.bus import Handler, MessageBus, create_bus
from shared.db import create_engine, create_sessionmaker, ping
from shared.errors import UnsupportedMediaType, install_problem_handlers
from shared.logging import RequestContextMiddleware, configure_logging
from shared.metrics import MetricsMiddleware
from shared.openapi import install_problem_documentation
from shared.outbox import OutboxRecord, OutboxRelay
from shared.settings import ServiceSettings

log = structlog.get_logger("shared.app")

Hook = Callable[[FastAPI], Awaitable[None]]

_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def require_json_body(request: Request) -> None:
    """415 for a request body that is not JSON (``application/json`` or ``application/*+json``)."""
    if request.method not in _BODY_METHODS:
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not has_body:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(f"Send the body as application/json, not {media_type or 'an unlabelled body'}")


@dataclass
class Consumer:
    """A queue this service consumes; ``make_handler`` gets the app once its state is built."""

    queue: str
    binding_keys: list[str]
    make_handler: Callable[[FastAPI], Handler]


@dataclass
class ServiceParts:
    """What a service contributes to :func:`build_app`."""

    name: str
    title: str
    description: str
    version: str
    api_router: APIRouter
    outbox_model: type[OutboxRecord] | None = None
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    consumer: Consumer | None = None
    shutdown_grace_seconds: float = 30.0
    openapi_tags: list[dict[str, Any]] = field(default_factory=list)
    # Routers mounted on the app itself, outside `api_router` and its JSON-body rule (e.g. pages).
    extra_routers: list[APIRouter] = field(default_factory=list)


async def _subscribe_until_connected(app: FastAPI, consumer: Consumer, *, service: str) -> None:
    delay = 0.5
    while True:
        try:
            await app.state.bus.subscribe(consumer.queue, consumer.binding_keys, consumer.make_handler(app))
            log.info("consumer.started", service=service, queue=consumer.queue)
            return
        except Exception as exc:
            log.warning(
                "consumer.subscribe_failed", service=service, error_class=type(exc).__name__, retry_in=delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)


async def _start_bus_with_retry(bus: MessageBus, *, service: str) -> None:
    delay = 0.5
    while True:
        try:
            await bus.start()
            return
        except Exception as exc:
            log.warning("bus.unreachable", service=service, error_class=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)


def build_app(settings: ServiceSettings, parts: ServiceParts, *, bus: MessageBus | None = None) -> FastAPI:
    """Assemble the FastAPI app; ``bus`` lets the embedded runner share one in-process bus."""
    configure_logging(level=settings.log_level, json=settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        own_bus = bus is None
        app.state.bus = bus or create_bus(
            settings.amqp_url,
            exchange=settings.event_exchange,
            queue_type=settings.queue_type,
            retry_delays=settings.event_retry_delays,
        )
        app.state.token_verifier = TokenVerifier(settings)
        # Before any task starts: a hook that fails (a missing service token) then leaves nothing
        # running, and the process exits instead of hanging on a half-open broker connection.
        for hook in parts.on_startup:
            await hook(app)
        connect_task: asyncio.Task[None] | None = None
        if own_bus:
            connect_task = asyncio.create_task(_start_bus_with_retry(app.state.bus, service=parts.name))
        relay: OutboxRelay | None = None
        relay_task: asyncio.Task[None] | None = None
        if parts.outbox_model is not None and settings.outbox_relay_enabled:
            relay = OutboxRelay(
                sessionmaker=app.state.sessionmaker,
                model=parts.outbox_model,
                bus=app.state.bus,
                batch_size=settings.outbox_batch_size,
                poll_seconds=settings.outbox_poll_seconds,
            )
            app.state.outbox_relay = relay
            relay_task = asyncio.create_task(relay.run())
        subscribe_task: asyncio.Task[None] | None = None
        if parts.consumer is not None:
            # The HTTP surface comes up even while the broker is down; readiness says so.
            subscribe_task = asyncio.create_task(
                _subscribe_until_connected(app, parts.consumer, service=parts.name)
            )
            task = subscribe_task

            async def consuming() -> None:
                if not task.done() or task.cancelled():
                    raise ConnectionError("not consuming yet")

            app.state.readiness_checks["consumer"] = consuming
        log.info("service.started", service=parts.name, version=parts.version)
        try:
            yield
        finally:
            if subscribe_task is not None:
                # SIGTERM: stop taking messages and let in-flight ones commit and ack; the broker
                # redelivers whatever is still unacknowledged after the grace period.
                subscribe_task.cancel()
                await app.state.bus.stop_consuming(timeout=parts.shutdown_grace_seconds)
            for hook in reversed(parts.on_shutdown):
                await hook(app)
            if relay is not None and relay_task is not None:
                # Let the current batch finish: a row is marked sent only after its confirm.
                relay.stop()
                await asyncio.wait([relay_task], timeout=15)
                relay_task.cancel()
            if connect_task is not None:
                connect_task.cancel()
            if own_bus:
                await app.state.bus.close()
            await engine.dispose()
            log.info("service.stopped", service=parts.name)

    app = FastAPI(
        title=parts.title,
        description=parts.description,
        version=parts.version,
        lifespan=lifespan,
        # Served by install_api_docs from local files instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            *parts.openapi_tags,
            {"name": "identity", "description": "Who the bearer token says the caller is."},
            {"name": "operations", "description": "Health, readiness, metrics and dead letters."},
        ],
        servers=[{"url": "/", "description": "The server that serves this document"}],
        # Operation ids are the route functions' names: stable across path changes, so generated
        # clients keep their method names.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.service_name = parts.name
    app.state.settings = settings

    async def database_ready() -> None:
        await ping(app.state.engine)

    async def broker_ready() -> None:
        await app.state.bus.ping()

    app.state.readiness_checks = {"database": database_ready, "broker": broker_ready}
    install_problem_handlers(app)
    install_body_limit(app, settings.max_body_bytes)
    install_problem_documentation(app)
    install_api_docs(app)
    app.add_middleware(MetricsMiddleware, service=parts.name)
    app.add_middleware(RequestContextMiddleware, service=parts.name)
    app.include_router(health.router)
    app.include_router(parts.api_router)
    if parts.consumer is not None:
        app.state.consumer_queue = parts.consumer.queue
        app.include_router(dead_letters.router)
    for extra in parts.extra_routers:
        app.include_router(extra)
    return app
