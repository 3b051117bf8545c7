"""The consumer loop: one unit of work per message, acknowledged only after it committed."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notify_worker.handlers import HANDLERS
from notify_worker.models import NotifyInbox
from notify_worker.notices.service import Ports, current_ports
from shared.bus import Handler
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.metrics import EVENTS_CONSUMED
from shared.outbox import first_delivery

log = structlog.get_logger("notify_worker.consumer")


def make_handler(sessionmaker: async_sessionmaker[AsyncSession], ports: Ports | None = None) -> Handler:
    async def handle(event: EventEnvelope) -> None:
        token = current_ports.set(ports)
        try:
            await _handle(event)
        finally:
            current_ports.reset(token)

    async def _handle(event: EventEnvelope) -> None:
        async with unit_of_work(sessionmaker) as session:
            if not await first_delivery(session, NotifyInbox, event):
                EVENTS_CONSUMED.labels("notify-worker", event.type, "duplicate").inc()
                log.info("event.duplicate_ignored")
                return
            handler = HANDLERS.get(event.type)
            if handler is not None:
                await handler(session, event)
        outcome = "handled" if handler is not None else "recorded"
        EVENTS_CONSUMED.labels("notify-worker", event.type, outcome).inc()
        log.info("event.consumed", outcome=outcome)

    return handle
