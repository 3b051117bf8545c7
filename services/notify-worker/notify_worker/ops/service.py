"""The operators' queries: notices, deliveries and a delivery's attempts. They only read.

Lists are keyset-paginated on (created_at, id), or (at, id) for attempts, which never change, so a
page boundary holds while the schedule moves underneath.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.notices.models import NoticeState, NotifyNotice
from shared.errors import NotFound
from shared.pagination import keyset_page


async def case_notices(session: AsyncSession, *, case_id: uuid.UUID) -> list[NotifyNotice]:
    """Every notice of the case, by due time; an unknown case has none."""
    rows = await session.execute(
        select(NotifyNotice)
        .where(col(NotifyNotice.case_id) == case_id)
        .order_by(col(NotifyNotice.due_at), col(NotifyNotice.id))
    )
    return list(rows.scalars().all())


async def list_notices(
    session: AsyncSession,
    *,
    case_id: uuid.UUID | None,
    recipient_organization_id: uuid.UUID | None,
    state: NoticeState | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NotifyNotice], str | None]:
    """A page of notices, oldest first, filtered by any of case, recipient and state; the next cursor."""
    conditions: list[ColumnElement[bool]] = []
    if case_id is not None:
        conditions.append(col(NotifyNotice.case_id) == case_id)
    if recipient_organization_id is not None:
        conditions.append(col(NotifyNotice.recipient_organization_id) == recipient_organization_id)
    if state is not None:
        conditions.append(col(NotifyNotice.state) == state)
    return await keyset_page(
        session,
        select(NotifyNotice).where(*conditions),
        time_column=col(NotifyNotice.created_at),
        id_column=col(NotifyNotice.id),
        limit=limit,
        cursor=cursor,
    )


async def get_notice(session: AsyncSession, *, notice_id: uuid.UUID) -> NotifyNotice:
    """One notice; 404 when there is none."""
    notice = await session.get(NotifyNotice, notice_id)
    if notice is None:
        raise NotFound("No such notice")
    return notice


async def deliveries_of(session: AsyncSession, *, notice_id: uuid.UUID) -> list[NotifyDelivery]:
    """The notice's deliveries, one per webhook endpoint of its recipient, oldest first."""
    rows = await session.execute(
        select(NotifyDelivery)
        .where(col(NotifyDelivery.notice_id) == notice_id)
        .order_by(col(NotifyDelivery.created_at), col(NotifyDelivery.id))
    )
    return list(rows.scalars().all())


async def list_deliveries(
    session: AsyncSession,
    *,
    case_id: uuid.UUID | None,
    endpoint_id: uuid.UUID | None,
    recipient_organization_id: uuid.UUID | None,
    state: DeliveryState | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NotifyDelivery], str | None]:
    """A page of deliveries, oldest first, filtered by any of case, endpoint, recipient and state;
    the next cursor."""
    query = select(NotifyDelivery)
    if case_id is not None:
        query = query.join(NotifyNotice, col(NotifyNotice.id) == col(NotifyDelivery.notice_id)).where(
            col(NotifyNotice.case_id) == case_id
        )
    if endpoint_id is not None:
        query = query.where(col(NotifyDelivery.endpoint_id) == endpoint_id)
    if recipient_organization_id is not None:
        query = query.where(col(NotifyDelivery.organization_id) == recipient_organization_id)
    if state is not None:
        query = query.where(col(NotifyDelivery.state) == state)
    return await keyset_page(
        session,
        query,
        time_column=col(NotifyDelivery.created_at),
        id_column=col(NotifyDelivery.id),
        limit=limit,
        cursor=cursor,
    )


async def delivery_attempts(
    session: AsyncSession, *, delivery_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[NotifyAttempt], str | None]:
    """A page of the delivery's attempts, oldest first; the next cursor. 404 for an unknown delivery."""
    if await session.get(NotifyDelivery, delivery_id) is None:
        raise NotFound("No such delivery")
    return await keyset_page(
        session,
        select(NotifyAttempt).where(col(NotifyAttempt.delivery_id) == delivery_id),
        time_column=col(NotifyAttempt.at),
        id_column=col(NotifyAttempt.id),
        limit=limit,
        cursor=cursor,
    )
