"""agreement-api consumes case-api's ``case.*`` events into its case read model (coverage)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.models import AgreementInbox
from agreement_api.resolution import service as resolution
from shared.consumer import InboxConsumer, Route, routes
from shared.contracts import events as contracts
from shared.events import EventEnvelope


async def _case_event(session: AsyncSession, event: EventEnvelope, payload: contracts.CaseFacts) -> None:
    await resolution.record_case_event(session, facts=payload, occurred_at=event.occurred_at)


def make_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> InboxConsumer:
    case_events = [model for model in contracts.EVENTS.values() if issubclass(model, contracts.CaseFacts)]
    return InboxConsumer(
        service="agreement-api",
        inbox=AgreementInbox,
        sessionmaker=sessionmaker,
        routes=routes(*(Route(model, _case_event) for model in case_events)),
    )
