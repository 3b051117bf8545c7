"""Claiming due notices: any number of worker replicas may poll side by side.

Rows are locked with ``FOR UPDATE SKIP LOCKED``, so two claimers never get the same notice; a
claim whose deliveries are not recorded within the visibility timeout returns the notice to
``scheduled``. Once a notice has deliveries, they carry its retries
(notify_worker.deliveries.dispatcher).

A due change notice that need not be sent any more is cancelled instead of claimed: its recipient
already holds its date, or another notice tells it that date now, such as a milestone notice that
fell due with it (notify_worker.notices.told).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.deliveries.models import NotifyDelivery
from notify_worker.notices.events import emit_notice
from notify_worker.notices.models import NoticeKind, NoticeState, NotifyNotice
from notify_worker.notices.told import needless_change
from shared.contracts import events as contracts
from shared.db import utcnow


async def claim_due(
    session: AsyncSession, *, worker_id: str, now: datetime | None = None, limit: int = 50
) -> list[NotifyNotice]:
    """Claim up to ``limit`` scheduled notices due by ``now``, earliest first; a change notice that
    need not be sent is cancelled instead (and not returned). The caller commits."""
    now = now or utcnow()
    notices = list(
        (
            await session.execute(
                select(NotifyNotice)
                .where(col(NotifyNotice.state) == NoticeState.SCHEDULED, col(NotifyNotice.due_at) <= now)
                .order_by(col(NotifyNotice.due_at), col(NotifyNotice.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    for notice in notices:
        notice.state = NoticeState.CLAIMED
        notice.claimed_by = worker_id
        notice.claimed_at = now
        notice.updated_at = now
    await session.flush()  # a milestone claimed with a change notice carries its date
    claimed: list[NotifyNotice] = []
    for notice in notices:
        needless = (
            await needless_change(session, notice, now=now) if notice.kind is NoticeKind.CHANGE else None
        )
        if needless is None:
            claimed.append(notice)
            continue
        notice.state = NoticeState.CANCELLED
        notice.claimed_by = None
        notice.claimed_at = None
        emit_notice(session, contracts.NoticeCancelled, notice, reason=needless)
    await session.flush()
    return claimed


async def release_stale_claims(
    session: AsyncSession, *, timeout: timedelta, now: datetime | None = None
) -> int:
    """Return claims older than ``timeout`` that have no deliveries yet to ``scheduled``; how many."""
    now = now or utcnow()
    result = await session.execute(
        update(NotifyNotice)
        .where(
            col(NotifyNotice.state) == NoticeState.CLAIMED,
            col(NotifyNotice.claimed_at) < now - timeout,
            ~exists().where(col(NotifyDelivery.notice_id) == col(NotifyNotice.id)),
        )
        .values(
            state=NoticeState.SCHEDULED,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
            version=NotifyNotice.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
