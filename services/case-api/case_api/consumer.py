"""case-api consumes the organization directory's events into its local read model, and accepted
notice receipts into the responsibility group."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseInbox
from case_api.notices import receipts
from case_api.organizations import service as organizations
from shared.bus import Handler
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.metrics import EVENTS_CONSUMED
from shared.outbox import first_delivery

log = structlog.get_logger("case_api.consumer")

ORGANIZATION_EVENTS = frozenset({"organization.created.v1", "organization.changed.v1"})


def make_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> Handler:
    async def handle(event: EventEnvelope) -> None:
        async with unit_of_work(sessionmaker) as session:
            if not await first_delivery(session, CaseInbox, event):
                EVENTS_CONSUMED.labels("case-api", event.type, "duplicate").inc()
                return
            if event.type in ORGANIZATION_EVENTS:
                await organizations.upsert_from_event(session, event.data)
            elif event.type == receipts.NOTICE_RECEIPT_ACCEPTED:
                await receipts.add_contacts(session, event.data, event_id=str(event.id))
        if event.type in ORGANIZATION_EVENTS:
            # Committed now: drop the cached facts again, in case a request cached the old row
            # between the upsert (which dropped them first) and the commit.
            organizations.forget()
        EVENTS_CONSUMED.labels("case-api", event.type, "handled").inc()

    return handle
