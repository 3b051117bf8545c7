"""Sending dead letters again (admin): one delivery, or every one of an endpoint since a moment
(docs/notices.md, "Redelivery").

A redelivered delivery keeps its ``webhook_id`` and its body (built from the notice row, which
keeps the facts it was planned with), so a receiver that did get it deduplicates; it goes to the
endpoint's current URL. The endpoint must be active in agreement-api: sending to one that a person
or the worker disabled would overrule them, so it is enabled there first (which also starts the
endpoint's health over, notify_worker.deliveries.health.seen_active).

The delivery becomes ``pending`` and due now, ``redeliveries`` counts one more, ``ended_at`` is
cleared and ``updated_at`` marks the start of the new run of attempts: the retry schedule starts
again from the attempts made after it, while ``attempts`` keeps counting every attempt ever made.
``updated_at`` is set just after the delivery's latest attempt even if this host's clock is behind
the worker's, so no earlier attempt is counted in the new run. A ``dead`` notice goes back to
``claimed`` with ``dead_at`` and ``escalated_at`` cleared (it may end, and escalate, again); a
delivered notice stays delivered.

Safe to repeat without an Idempotency-Key: only ``dead`` and ``failed_permanently`` deliveries are
taken, under a row lock, so a second call finds nothing to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.clients import EndpointPort, UpstreamError, WebhookEndpoint
from notify_worker.deliveries import health
from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.notices.models import NoticeState, NotifyNotice
from shared.db import utcnow
from shared.errors import Conflict, NotFound, ServiceUnavailable

log = structlog.get_logger("notify_worker.redelivery")

REDELIVERABLE = (DeliveryState.DEAD, DeliveryState.FAILED_PERMANENTLY)
CLAIMANT = "redelivery"  # claimed_by of a dead notice an operator sent again
TICK = timedelta(microseconds=1)


async def active_endpoint(
    endpoints: EndpointPort, organization_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """The endpoint as agreement-api has it now; 409 unless it is active, 503 when unreachable."""
    try:
        listed = await endpoints.endpoints_for(organization_id)
    except (UpstreamError, httpx.HTTPError, ValueError) as exc:
        raise ServiceUnavailable("agreement-api could not be asked about the endpoint; try again") from exc
    for endpoint in listed:
        if endpoint.id == endpoint_id:
            if endpoint.state != "active":
                raise Conflict(
                    "The endpoint is disabled in agreement-api; enable it there, then redeliver",
                    endpoint_id=str(endpoint_id),
                )
            return endpoint
    raise Conflict("agreement-api no longer knows the endpoint", endpoint_id=str(endpoint_id))


async def redeliver_one(
    session: AsyncSession, endpoints: EndpointPort, delivery_id: uuid.UUID
) -> NotifyDelivery:
    """Send one dead or failed delivery again; 404 unknown, 409 when it has not ended that way."""
    delivery = await session.get(NotifyDelivery, delivery_id)
    if delivery is None:
        raise NotFound("No such delivery")
    _check_redeliverable(delivery)
    asked_at = utcnow()
    endpoint = await active_endpoint(endpoints, delivery.organization_id, delivery.endpoint_id)
    delivery = await session.get(NotifyDelivery, delivery_id, with_for_update=True, populate_existing=True)
    assert delivery is not None  # deliveries are never deleted
    _check_redeliverable(delivery)  # another operator may have been quicker
    await health.seen_active(session, [endpoint.id], asked_at=asked_at)
    await _restart(session, [delivery], url=endpoint.url, now=utcnow())
    return delivery


def _check_redeliverable(delivery: NotifyDelivery) -> None:
    if delivery.state not in REDELIVERABLE:
        raise Conflict(
            f"Only a dead or failed_permanently delivery can be redelivered; this one is {delivery.state.value}",
            state=delivery.state.value,
        )


async def redeliver_since(
    session: AsyncSession, endpoints: EndpointPort, endpoint_id: uuid.UUID, since: datetime
) -> list[NotifyDelivery]:
    """Send again every dead or failed delivery of the endpoint that ended at or after ``since``."""
    conditions = (
        col(NotifyDelivery.endpoint_id) == endpoint_id,
        col(NotifyDelivery.state).in_(REDELIVERABLE),
        col(NotifyDelivery.ended_at) >= since,
    )
    first = (await session.execute(select(NotifyDelivery).where(*conditions).limit(1))).scalar_one_or_none()
    if first is None:
        return []
    asked_at = utcnow()
    endpoint = await active_endpoint(endpoints, first.organization_id, endpoint_id)
    deliveries = list(
        (
            await session.execute(
                select(NotifyDelivery)
                .where(*conditions)
                .order_by(col(NotifyDelivery.ended_at), col(NotifyDelivery.id))
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    await health.seen_active(session, [endpoint.id], asked_at=asked_at)
    await _restart(session, deliveries, url=endpoint.url, now=utcnow())
    return deliveries


async def _restart(
    session: AsyncSession, deliveries: Sequence[NotifyDelivery], *, url: str, now: datetime
) -> None:
    if not deliveries:
        return
    ids = [delivery.id for delivery in deliveries]
    rows = await session.execute(
        select(col(NotifyAttempt.delivery_id), func.max(col(NotifyAttempt.at)))
        .where(col(NotifyAttempt.delivery_id).in_(ids))
        .group_by(col(NotifyAttempt.delivery_id))
    )
    latest: dict[uuid.UUID, datetime] = {row[0]: row[1] for row in rows}
    for delivery in deliveries:
        last = latest.get(delivery.id)
        start = max(now, last + TICK) if last is not None else now
        delivery.state = DeliveryState.PENDING
        delivery.next_attempt_at = start
        delivery.redeliveries += 1
        delivery.ended_at = None
        delivery.updated_at = start
        delivery.url = url
    notices = (
        (
            await session.execute(
                select(NotifyNotice)
                .where(
                    col(NotifyNotice.id).in_({delivery.notice_id for delivery in deliveries}),
                    col(NotifyNotice.state) == NoticeState.DEAD,
                )
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    for notice in notices:
        notice.state = NoticeState.CLAIMED
        notice.claimed_by = CLAIMANT
        notice.claimed_at = now
        notice.dead_at = None
        notice.escalated_at = None
        notice.updated_at = now
    await session.flush()
    log.info("redelivery.restarted", deliveries=[str(i) for i in ids], notices_reopened=len(notices))
