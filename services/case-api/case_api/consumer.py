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


async def _organization(
    session: AsyncSession,
    _event: EventEnvelope,
    payload: contracts.OrganizationCreated | contracts.OrganizationChanged,
) -> None:
    await organizations.upsert_from_event(session, payload)


def _forget_organizations(_payload: contracts.EventPayload) -> None:
    # Committed now: drop the cached facts again, in case a request cached the old row between
    # the upsert (which dropped them first) and the commit.
    organizations.forget()


async def _receipt_accepted(
    session: AsyncSession, _event: EventEnvelope, payload: contracts.NoticeReceiptAccepted
) -> None:
    await receipts.add_contacts(session, payload)


def make_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> InboxConsumer:
    return InboxConsumer(
        service="case-api",
        inbox=CaseInbox,
        sessionmaker=sessionmaker,
        routes=routes(
            Route(contracts.OrganizationCreated, _organization, after_commit=_forget_organizations),
            Route(contracts.OrganizationChanged, _organization, after_commit=_forget_organizations),
            Route(contracts.NoticeReceiptAccepted, _receipt_accepted),
        ),
    )
