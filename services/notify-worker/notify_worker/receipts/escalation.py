"""Escalation: the coordinator is told when a recipient did not answer in time, or could not be told.

Two kinds of notice escalate, each once (``escalated_at`` is set in the same transaction as the
event is staged):

- ``no_receipt``: delivered, ``receipt_due_at`` has passed and no final answer (``accepted`` or
  ``rejected``) came; a mere ``received`` does not stop it, since nobody has taken the case on;
- ``not_delivered``: the notice is ``dead`` (delivery gave up, or the recipient has no endpoint),
  so the coordinator must call the recipient; these escalate at once.

Rows are taken ``FOR UPDATE SKIP LOCKED``, so any number of workers may escalate side by side and
none escalates a notice twice; a notice a recipient is answering right now is skipped this round
and looked at again with its answer in the next.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.notices.events import emit_notice
from notify_worker.notices.models import NoticeState, NotifyNotice
from notify_worker.receipts.models import ReceiptStatus
from shared.contracts import events as contracts
from shared.db import unit_of_work, utcnow

log = structlog.get_logger("notify_worker.escalation")

# Notices escalated per call when the caller does not say; the dispatcher passes its batch size.


class EscalationReason(StrEnum):
    NO_RECEIPT = "no_receipt"  # delivered, no accepted or rejected receipt by receipt_due_at
    NOT_DELIVERED = "not_delivered"  # dead: the recipient was never told


async def _overdue(session: AsyncSession, now: datetime, limit: int) -> list[NotifyNotice]:
    # Matches the partial index ix_notify_notice_receipt_due (escalated_at IS NULL AND receipt_due_at IS NOT NULL).
    rows = await session.execute(
        select(NotifyNotice)
        .where(
            col(NotifyNotice.escalated_at).is_(None),
            col(NotifyNotice.receipt_due_at).is_not(None),
            col(NotifyNotice.receipt_due_at) <= now,
            col(NotifyNotice.state) == NoticeState.DELIVERED,
            or_(
                col(NotifyNotice.receipt_status).is_(None),
                col(NotifyNotice.receipt_status) == ReceiptStatus.RECEIVED,
            ),
        )
        .order_by(col(NotifyNotice.receipt_due_at), col(NotifyNotice.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.scalars().all())


async def _dead(session: AsyncSession, limit: int) -> list[NotifyNotice]:
    rows = await session.execute(
        select(NotifyNotice)
        .where(
            col(NotifyNotice.state) == NoticeState.DEAD,
            col(NotifyNotice.dead_at).is_not(None),
            col(NotifyNotice.escalated_at).is_(None),
        )
        .order_by(col(NotifyNotice.dead_at), col(NotifyNotice.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.scalars().all())


def _escalate(session: AsyncSession, notice: NotifyNotice, reason: EscalationReason, now: datetime) -> None:
    data: dict[str, Any] = {
        "reason": reason.value,
        "receipt_due_at": notice.receipt_due_at.isoformat() if notice.receipt_due_at else None,
        "receipt_status": notice.receipt_status.value if notice.receipt_status else None,
        "dead_at": notice.dead_at.isoformat() if notice.dead_at else None,
    }
    notice.escalated_at = now
    notice.updated_at = now
    emit_notice(session, contracts.NoticeEscalated, notice, **data)


async def escalate_overdue(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    limit: int,
) -> int:
    """Escalate up to ``limit`` notices (overdue receipts first, then dead notices) in one
    transaction; how many. Call it again while it returns ``limit``."""
    now = now or utcnow()
    async with unit_of_work(sessionmaker) as session:
        overdue = await _overdue(session, now, limit)
        dead = await _dead(session, limit - len(overdue)) if len(overdue) < limit else []
        for notice in overdue:
            _escalate(session, notice, EscalationReason.NO_RECEIPT, now)
        for notice in dead:
            _escalate(session, notice, EscalationReason.NOT_DELIVERED, now)
        await session.flush()
    if overdue or dead:
        log.info("notices.escalated", no_receipt=len(overdue), not_delivered=len(dead))
    return len(overdue) + len(dead)
