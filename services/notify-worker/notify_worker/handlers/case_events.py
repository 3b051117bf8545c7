"""``case.*`` events: keep the case's facts and recompute its notice schedule."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notify_worker.notices.service import Ports, recompute, record_case
from shared.consumer import Route
from shared.contracts import events as contracts
from shared.events import EventEnvelope


def routes(ports: Ports) -> list[Route[Any]]:
    """Every case event: its facts are recorded (an older event never overwrites newer ones) and
    the schedule recomputed. Consents are asked live, so even an out-of-order consent event
    recomputes."""

    async def handle(session: AsyncSession, event: EventEnvelope, facts: contracts.CaseFacts) -> None:
        await record_case(session, facts, event.occurred_at)
        await recompute(session, facts.case_id, ports=ports)

    case_events = [model for model in contracts.EVENTS.values() if issubclass(model, contracts.CaseFacts)]
    return [Route(model, handle) for model in case_events]
