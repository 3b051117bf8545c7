"""``case.*`` events: keep the case's facts and recompute its notice schedule."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from notify_worker.handlers import handles
from notify_worker.notices.service import Ports, current_ports, recompute, record_case
from shared.events import EventEnvelope

CASE_EVENTS = (
    "case.opened.v1",
    "case.release_date_changed.v1",
    "case.municipality_changed.v1",
    "case.consent_given.v1",
    "case.consent_withdrawn.v1",
    "case.status_changed.v1",
    "case.transferred.v1",
    "case.closed.v1",
    "case.updated.v1",
)


async def handle_case_event(
    session: AsyncSession, event: EventEnvelope, *, ports: Ports | None = None
) -> None:
    """Record the facts (an older event never overwrites newer ones) and recompute. Consents are
    asked live, so even an out-of-order consent event recomputes."""
    ports = ports or current_ports.get()
    if ports is None:
        raise RuntimeError("notify-worker's ports to case-api and agreement-api are not configured")
    if not {"case_id", "status", "current_unit_id"} <= event.data.keys():
        return  # not a case-facts event: nothing to schedule from
    await record_case(session, event.data, event.occurred_at)
    await recompute(session, uuid.UUID(str(event.data["case_id"])), ports=ports)


for _event_type in CASE_EVENTS:
    handles(_event_type)(handle_case_event)
