"""agreement-api consumes case-api's ``case.*`` events into its case read model (coverage)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.models import AgreementInbox
from agreement_api.resolution import service as resolution
from shared.bus import Handler
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.metrics import EVENTS_CONSUMED
from shared.outbox import first_delivery


def make_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> Handler:
    async def handle(event: EventEnvelope) -> None:
        async with unit_of_work(sessionmaker) as session:
            if not await first_delivery(session, AgreementInbox, event):
                EVENTS_CONSUMED.labels("agreement-api", event.type, "duplicate").inc()
                return
            if event.type.startswith("case.") and "case_id" in event.data and "status" in event.data:
                await resolution.record_case_event(session, data=event.data, occurred_at=event.occurred_at)
        EVENTS_CONSUMED.labels("agreement-api", event.type, "handled").inc()

    return handle
