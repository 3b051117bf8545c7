"""The inbox consumer every service runs: parse, dedupe, handle, count.

One message is one unit of work: the inbox row and the handler's changes commit together, and
the bus acknowledges only afterwards. The payload is parsed against its contract before anything
is written; one that does not fit raises :class:`~shared.contracts.MalformedEvent`, which the bus
dead-letters at once instead of retrying.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import EventPayload, parse_event
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.metrics import EVENTS_CONSUMED
from shared.outbox import InboxRecord, first_delivery

log = structlog.get_logger("shared.consumer")

P = TypeVar("P", bound=EventPayload)


@dataclass(frozen=True)
class Route(Generic[P]):
    """How one event type is handled: ``handle`` runs in the unit of work after the inbox admitted
    the event and never commits; ``after_commit`` runs once that committed (e.g. to drop a cache)."""

    model: type[P]
    handle: Callable[[AsyncSession, EventEnvelope, P], Awaitable[None]]
    after_commit: Callable[[P], None] | None = None


def routes(*items: Route[Any]) -> dict[str, Route[Any]]:
    """Routes keyed by their event type; a type routed twice is a mistake."""
    found: dict[str, Route[Any]] = {}
    for item in items:
        if item.model.TYPE in found:
            raise ValueError(f"{item.model.TYPE} is routed twice")
        found[item.model.TYPE] = item
    return found


class InboxConsumer:
    """A bus handler for one service's queue. Events bound to the queue without a route are
    recorded in the inbox and otherwise ignored."""

    def __init__(
        self,
        *,
        service: str,
        inbox: type[InboxRecord],
        sessionmaker: async_sessionmaker[AsyncSession],
        routes: Mapping[str, Route[Any]],
    ) -> None:
        self.service = service
        self.inbox = inbox
        self.sessionmaker = sessionmaker
        self.routes = dict(routes)

    async def __call__(self, event: EventEnvelope) -> None:
        route = self.routes.get(event.type)
        payload = parse_event(event, route.model) if route is not None else None
        async with unit_of_work(self.sessionmaker) as session:
            if not await first_delivery(session, self.inbox, event):
                EVENTS_CONSUMED.labels(self.service, event.type, "duplicate").inc()
                log.info("event.duplicate_ignored")
                return
            if route is not None:
                await route.handle(session, event, payload)
        if route is not None and route.after_commit is not None:
            route.after_commit(payload)
        outcome = "handled" if route is not None else "recorded"
        EVENTS_CONSUMED.labels(self.service, event.type, outcome).inc()
        log.info("event.consumed", outcome=outcome)
