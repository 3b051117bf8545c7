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
still announce a future release are scheduled again, due now.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.deliveries.models import NotifyDelivery
from notify_worker.handlers import handles
from notify_worker.notices.events import emit
from notify_worker.notices.models import NoticeState, NotifyCase, NotifyNotice
from notify_worker.notices.service import CLOSED, current_ports, recompute
from shared.clock import oslo_today
from shared.db import utcnow
from shared.events import EventEnvelope

log = structlog.get_logger("notify_worker.handlers.agreement_events")

RECOMPUTE_REQUESTED = "notify.recompute_requested.v1"

AGREEMENT_EVENTS = (
    "agreement.activated.v1",
    "agreement.changed.v1",
    "agreement.expired.v1",
    "agreement.terminated.v1",
)
ENDPOINT_READY_EVENTS = ("endpoint.created.v1", "endpoint.changed.v1")


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


async def handle_agreement_event(session: AsyncSession, event: EventEnvelope) -> None:
    """Ask for a recompute of every live case, one message each."""
    case_ids = await live_case_ids(session)
    for case_id in case_ids:
        emit(
            session,
            RECOMPUTE_REQUESTED,
            subject=f"case/{case_id}",
            case_id=str(case_id),
            reason=event.type,
            caused_by=str(event.id),
        )
    log.info("schedule.recompute_requested", cases=len(case_ids), reason=event.type)


async def handle_recompute_requested(session: AsyncSession, event: EventEnvelope) -> None:
    ports = current_ports.get()
    if ports is None:
        raise RuntimeError("notify-worker's ports to case-api and agreement-api are not configured")
    await recompute(session, uuid.UUID(str(event.data["case_id"])), ports=ports)


async def handle_endpoint_ready(session: AsyncSession, event: EventEnvelope) -> None:
    """Give notices that died for want of an endpoint another chance when one appears."""
    if event.data.get("state", "active") != "active" or "organization_id" not in event.data:
        return
    organization_id = uuid.UUID(str(event.data["organization_id"]))
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


for _event_type in AGREEMENT_EVENTS:
    handles(_event_type)(handle_agreement_event)
handles(RECOMPUTE_REQUESTED)(handle_recompute_requested)
for _event_type in ENDPOINT_READY_EVENTS:
    handles(_event_type)(handle_endpoint_ready)
