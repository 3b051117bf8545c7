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
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.deliveries.models import NotifyDelivery
from notify_worker.notices.events import emit_notice
from notify_worker.notices.models import NoticeKind, NoticeState, NotifyNotice
from notify_worker.notices.told import needless_change
from shared.contracts import events as contracts
from shared.db import table_of, utcnow

_NOTICE = table_of(NotifyNotice).c
# A notice's references (events.NoticeRef) and its date (told.NoticeDate): what the hot path's
# statements read of a notice instead of the whole row.
NOTICE_DATE = (
    _NOTICE.id,
    _NOTICE.case_id,
    _NOTICE.recipient_organization_id,
    _NOTICE.kind,
    _NOTICE.milestone_days,
    _NOTICE.release_date,
)
# The claim reads the columns the round plans with, not the row.
_DUE = (
    select(*NOTICE_DATE)
    .where(_NOTICE.state == NoticeState.SCHEDULED, _NOTICE.due_at <= bindparam("now"))
    .order_by(_NOTICE.due_at, _NOTICE.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_MARK = (
    update(table_of(NotifyNotice))
    .where(_NOTICE.id.in_(bindparam("ids", expanding=True)))
    .values(
        state=bindparam("state"),
        claimed_by=bindparam("worker"),
        claimed_at=bindparam("at"),
        updated_at=bindparam("now"),
        version=_NOTICE.version + 1,
    )
)


async def claim_due(
    session: AsyncSession, *, worker_id: str, now: datetime | None = None, limit: int = 50
) -> list[Any]:
    """Claim up to ``limit`` scheduled notices due by ``now``, earliest first; a change notice that
    need not be sent is cancelled instead (and not returned). The caller commits. Each claimed
    notice is a row of its references (id, case, recipient, kind, milestone, release date)."""
    now = now or utcnow()
    notices = (await session.execute(_DUE, {"now": now, "limit": limit})).all()
    if not notices:
        return []
    # Marked before the change notices are looked at: a milestone claimed with one carries its date.
    await session.execute(
        _MARK,
        {
            "ids": [notice.id for notice in notices],
            "state": NoticeState.CLAIMED,
            "worker": worker_id,
            "at": now,
            "now": now,
        },
    )
    claimed: list[Any] = []
    for notice in notices:
        needless = (
            await needless_change(session, notice, now=now) if notice.kind is NoticeKind.CHANGE else None
        )
        if needless is None:
            claimed.append(notice)
            continue
        await session.execute(
            _MARK,
            {"ids": [notice.id], "state": NoticeState.CANCELLED, "worker": None, "at": None, "now": now},
        )
        emit_notice(session, contracts.NoticeCancelled, notice, reason=needless)
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
