"""case-api consumes the organization directory's events into its local read model, and accepted
notice receipts into the responsibility group."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseInbox
from case_api.notices import receipts
from case_api.organizations import service as organizations
from shared.consumer import InboxConsumer, Route, routes
from shared.contracts import events as contracts
from shared.events import EventEnvelope


async def _receipt_accepted(
    session: AsyncSession, _event: EventEnvelope, payload: contracts.NoticeReceiptAccepted
) -> None:
    await receipts.add_contacts(session, payload)


def make_handler(
    sessionmaker: async_sessionmaker[AsyncSession], organization_facts: organizations.FactsCache
) -> InboxConsumer:
    """The consumer; ``organization_facts`` is the app's cache, dropped by every directory event."""

    async def organization(
        session: AsyncSession,
        _event: EventEnvelope,
        payload: contracts.OrganizationCreated | contracts.OrganizationChanged,
    ) -> None:
        organization_facts.clear()
        await organizations.upsert_from_event(session, payload)

    def forget_organizations(_payload: contracts.EventPayload) -> None:
        # Committed now: drop the facts again, in case a request cached the old row between the
        # upsert and the commit.
        organization_facts.clear()

    return InboxConsumer(
        service="case-api",
        inbox=CaseInbox,
        sessionmaker=sessionmaker,
        routes=routes(
            Route(contracts.OrganizationCreated, organization, after_commit=forget_organizations),
            Route(contracts.OrganizationChanged, organization, after_commit=forget_organizations),
            Route(contracts.NoticeReceiptAccepted, _receipt_accepted),
        ),
    )
