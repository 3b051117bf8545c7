"""notify-worker's consumer: the shared inbox consumer with the worker's routes, its ports to the
other services and its endpoint cache passed in explicitly."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notify_worker.clients import CachedEndpoints
from notify_worker.handlers import agreement_events, case_events
from notify_worker.models import NotifyInbox
from notify_worker.notices.service import Ports
from shared.consumer import InboxConsumer, routes


def make_handler(
    sessionmaker: async_sessionmaker[AsyncSession], ports: Ports, endpoints: CachedEndpoints
) -> InboxConsumer:
    return InboxConsumer(
        service="notify-worker",
        inbox=NotifyInbox,
        sessionmaker=sessionmaker,
        routes=routes(*case_events.routes(ports), *agreement_events.routes(ports, endpoints)),
    )
