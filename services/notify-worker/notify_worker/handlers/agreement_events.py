"""``agreement.*`` and ``endpoint.*`` events: the rules or the places to send changed.

An agreement that comes into force, changes, expires or ends can change who is told what, for any
case: its parties are prisons, municipalities, NAV offices or whole regions, and the worker does not
keep the directory needed to narrow that down. So every *live* case (not closed, with a release date
today or later) is recomputed — but not inside this message: the handler writes one
``notify.recompute_requested.v1`` per case to the worker's own outbox, in the same transaction as the
inbox row, and each is then consumed as its own unit of work. A failing case is retried on its own,
and a national agreement touching thousands of cases never holds one long transaction open.

An endpoint that is created or enabled again gives a recipient that had nowhere to receive notices a
place to receive them: its notices that died for want of an endpoint (no delivery was ever made) and
still announce a future release are scheduled again, due now. Every ``endpoint.*`` event first drops
what the worker's endpoint cache holds for that organization and endpoint, so a revived notice never
reads a list that was empty a moment ago.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.clients import CachedEndpoints
from notify_worker.deliveries.models import NotifyDelivery
from notify_worker.notices.events import emit
from notify_worker.notices.models import NoticeState, NotifyCase, NotifyNotice
from notify_worker.notices.service import CLOSED, Ports, recompute
from shared.clock import oslo_today
from shared.consumer import Route
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.events import EventEnvelope

log = structlog.get_logger("notify_worker.handlers.agreement_events")


async def live_case_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Cases whose schedule can still change: open, with a release date today or later."""
    rows = await session.execute(
        select(col(NotifyCase.case_id))
        .where(
            col(NotifyCase.status) != CLOSED,
            col(NotifyCase.effective_release_date).is_not(None),
            col(NotifyCase.effective_release_date) >= oslo_today(),
        )
        .order_by(col(NotifyCase.effective_release_date), col(NotifyCase.case_id))
    )
    return list(rows.scalars())


async def handle_agreement_event(
    session: AsyncSession, event: EventEnvelope, _payload: contracts.AgreementEvent
) -> None:
    """Ask for a recompute of every live case, one message each."""
    case_ids = await live_case_ids(session)
    for case_id in case_ids:
        request = contracts.NotifyRecomputeRequested(case_id=case_id, reason=event.type, caused_by=event.id)
        emit(session, request, subject=f"case/{case_id}")
    log.info("schedule.recompute_requested", cases=len(case_ids), reason=event.type)


async def revive_for_endpoint(session: AsyncSession, endpoint: contracts.EndpointEvent) -> None:
    """Give notices that died for want of an endpoint another chance when an active one appears."""
    if endpoint.state != "active":
        return
    organization_id = endpoint.organization_id
    now = utcnow()
    notices = (
        await session.execute(
            select(NotifyNotice)
            .where(
                col(NotifyNotice.recipient_organization_id) == organization_id,
                col(NotifyNotice.state) == NoticeState.DEAD,
                col(NotifyNotice.release_date) >= oslo_today(),
                ~exists().where(col(NotifyDelivery.notice_id) == col(NotifyNotice.id)),
            )
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    revived = 0
    for notice in notices:
        notice.state = NoticeState.SCHEDULED
        notice.due_at = now
        notice.dead_at = None
        notice.escalated_at = None  # escalated as undeliverable; a new chance, a new deadline
        notice.claimed_by = None
        notice.claimed_at = None
        notice.updated_at = now
        revived += 1
    if revived:
        log.info("schedule.revived_for_endpoint", organization_id=str(organization_id), notices=revived)


def routes(ports: Ports, endpoints: CachedEndpoints) -> list[Route[Any]]:
    """Agreement events fan out to recompute requests; a recompute request recomputes its case;
    endpoint events drop the cached endpoint answers and revive notices that had nowhere to go."""

    async def recompute_requested(
        session: AsyncSession, _event: EventEnvelope, request: contracts.NotifyRecomputeRequested
    ) -> None:
        await recompute(session, request.case_id, ports=ports)

    async def endpoint_event(
        session: AsyncSession, _event: EventEnvelope, endpoint: contracts.EndpointEvent
    ) -> None:
        endpoints.forget(endpoint.organization_id, endpoint.endpoint_id)
        if isinstance(endpoint, (contracts.EndpointCreated, contracts.EndpointChanged)):
            await revive_for_endpoint(session, endpoint)

    def forget_endpoint(endpoint: contracts.EndpointEvent) -> None:
        # Committed: drop again whatever a delivery round cached while this message ran.
        endpoints.forget(endpoint.organization_id, endpoint.endpoint_id)

    agreement_events = [m for m in contracts.EVENTS.values() if issubclass(m, contracts.AgreementEvent)]
    endpoint_events = [m for m in contracts.EVENTS.values() if issubclass(m, contracts.EndpointEvent)]
    return [
        *(Route(model, handle_agreement_event) for model in agreement_events),
        Route(contracts.NotifyRecomputeRequested, recompute_requested),
        *(Route(model, endpoint_event, after_commit=forget_endpoint) for model in endpoint_events),
    ]
