"""Escalation to the coordinator: no final receipt by the deadline, or a notice that died."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from notify_worker.receipts.escalation import escalate_overdue
from notify_worker.receipts.models import ReceiptStatus
from shared.contracts.events import NoticeEscalated
from shared.db import unit_of_work
from tests.notify_worker.test_receipts import assert_documented

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)


def _notice(
    *,
    state: NoticeState = NoticeState.DELIVERED,
    receipt_due_at: datetime | None = None,
    receipt_status: ReceiptStatus | None = None,
    dead_at: datetime | None = None,
) -> NotifyNotice:
    return NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=uuid.uuid4(),
        recipient_kind=RecipientKind.NAV,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=30,
        release_date=date(2027, 3, 1),
        due_at=NOW - timedelta(days=6),
        state=state,
        receipt_deadline_days=5,
        delivered_at=receipt_due_at - timedelta(days=5) if receipt_due_at else None,
        receipt_due_at=receipt_due_at,
        receipt_status=receipt_status,
        dead_at=dead_at,
    )


async def _add(sessionmaker: async_sessionmaker[AsyncSession], *notices: NotifyNotice) -> None:
    async with unit_of_work(sessionmaker) as session:
        session.add_all(notices)


async def _escalations(sessionmaker: async_sessionmaker[AsyncSession]) -> list[NotifyOutbox]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(NotifyOutbox)
            .where(col(NotifyOutbox.type) == NoticeEscalated.TYPE)
            .order_by(col(NotifyOutbox.occurred_at))
        )
        return list(rows.scalars().all())


async def _escalated_at(
    sessionmaker: async_sessionmaker[AsyncSession], notice_id: uuid.UUID
) -> datetime | None:
    async with sessionmaker() as session:
        notice = await session.get(NotifyNotice, notice_id, populate_existing=True)
        assert notice is not None
        return notice.escalated_at


async def test_a_notice_without_a_receipt_escalates_once_its_deadline_passed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    due = NOW + timedelta(hours=1)
    notice = _notice(receipt_due_at=due)
    await _add(sessionmaker, notice)

    assert await escalate_overdue(sessionmaker, now=NOW, limit=10) == 0
    assert await escalate_overdue(sessionmaker, now=due - timedelta(microseconds=1), limit=10) == 0
    assert await _escalated_at(sessionmaker, notice.id) is None

    assert await escalate_overdue(sessionmaker, now=due, limit=10) == 1
    assert await _escalated_at(sessionmaker, notice.id) == due
    assert await escalate_overdue(sessionmaker, now=due + timedelta(days=3), limit=10) == 0, "only once"

    (event,) = await _escalations(sessionmaker)
    assert event.subject == f"case/{notice.case_id}"
    assert event.data == {
        "notice_id": str(notice.id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(notice.recipient_organization_id),
        "kind": "milestone",
        "milestone_days": 30,
        "reason": "no_receipt",
        "receipt_due_at": due.isoformat(),
        "receipt_status": None,
        "dead_at": None,
    }
    assert_documented(event)


async def test_a_final_answer_stops_escalation_and_a_mere_received_does_not(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    past = NOW - timedelta(days=1)
    accepted = _notice(receipt_due_at=past, receipt_status=ReceiptStatus.ACCEPTED)
    rejected = _notice(receipt_due_at=past, receipt_status=ReceiptStatus.REJECTED)
    received = _notice(receipt_due_at=past, receipt_status=ReceiptStatus.RECEIVED)
    await _add(sessionmaker, accepted, rejected, received)

    assert await escalate_overdue(sessionmaker, now=NOW, limit=10) == 1
    (event,) = await _escalations(sessionmaker)
    assert event.data["notice_id"] == str(received.id)
    assert event.data["receipt_status"] == "received"
    assert event.data["reason"] == "no_receipt"
    assert await _escalated_at(sessionmaker, accepted.id) is None
    assert await _escalated_at(sessionmaker, rejected.id) is None


async def test_a_dead_notice_escalates_at_once_and_pending_ones_never(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    died = NOW - timedelta(minutes=5)
    dead = _notice(state=NoticeState.DEAD, dead_at=died)
    others = [
        _notice(state=state) for state in (NoticeState.SCHEDULED, NoticeState.HELD, NoticeState.CLAIMED)
    ]
    cancelled = _notice(state=NoticeState.CANCELLED)
    await _add(sessionmaker, dead, *others, cancelled)

    assert await escalate_overdue(sessionmaker, now=NOW, limit=10) == 1
    (event,) = await _escalations(sessionmaker)
    assert event.data["notice_id"] == str(dead.id)
    assert event.data["reason"] == "not_delivered"
    assert event.data["dead_at"] == died.isoformat()
    assert event.data["receipt_due_at"] is None
    assert event.data["receipt_status"] is None
    assert_documented(event)
    assert await escalate_overdue(sessionmaker, now=NOW + timedelta(days=1), limit=10) == 0


async def test_the_limit_takes_the_longest_overdue_first(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    overdue = [_notice(receipt_due_at=NOW - timedelta(hours=h)) for h in (1, 3, 2)]
    dead = _notice(state=NoticeState.DEAD, dead_at=NOW - timedelta(days=1))
    await _add(sessionmaker, *overdue, dead)

    assert await escalate_overdue(sessionmaker, now=NOW, limit=2) == 2
    first = [event.data["notice_id"] for event in await _escalations(sessionmaker)]
    assert first == [str(overdue[1].id), str(overdue[2].id)]
    assert await escalate_overdue(sessionmaker, now=NOW, limit=2) == 2
    assert await escalate_overdue(sessionmaker, now=NOW, limit=2) == 0
    reasons = [event.data["reason"] for event in await _escalations(sessionmaker)]
    assert reasons == ["no_receipt", "no_receipt", "no_receipt", "not_delivered"]


async def test_two_racing_workers_never_escalate_a_notice_twice(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _add(
        committed_sessionmaker,
        *(_notice(receipt_due_at=NOW - timedelta(minutes=i)) for i in range(300)),
        *(_notice(state=NoticeState.DEAD, dead_at=NOW - timedelta(minutes=i)) for i in range(60)),
        *(_notice(receipt_due_at=NOW + timedelta(hours=1)) for _ in range(20)),  # not yet due
    )

    async def worker() -> list[int]:
        counts: list[int] = []
        while count := await escalate_overdue(committed_sessionmaker, now=NOW, limit=7):
            counts.append(count)
            await asyncio.sleep(0)
        return counts

    first, second = await asyncio.gather(worker(), worker())
    assert first, "both workers got work"
    assert second, "both workers got work"
    assert sum(first) + sum(second) == 360

    events = await _escalations(committed_sessionmaker)
    notice_ids = [event.data["notice_id"] for event in events]
    assert len(notice_ids) == len(set(notice_ids)) == 360, "a notice was escalated twice"
    async with committed_sessionmaker() as session:
        escalated = (
            await session.execute(
                select(func.count())
                .select_from(NotifyNotice)
                .where(col(NotifyNotice.escalated_at).is_not(None))
            )
        ).scalar_one()
    assert escalated == 360


async def test_a_notice_being_answered_is_skipped_until_its_answer_is_in(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    notice = _notice(receipt_due_at=NOW - timedelta(hours=1))
    await _add(committed_sessionmaker, notice)
    async with unit_of_work(committed_sessionmaker) as answering:
        # What the receipts endpoint holds while it stores an answer.
        locked = (
            await answering.execute(
                select(NotifyNotice).where(col(NotifyNotice.id) == notice.id).with_for_update()
            )
        ).scalar_one()
        skipped = await asyncio.wait_for(escalate_overdue(committed_sessionmaker, now=NOW, limit=10), 10)
        assert skipped == 0, "skipped, not waited for"
        locked.receipt_status = ReceiptStatus.ACCEPTED
    assert await escalate_overdue(committed_sessionmaker, now=NOW, limit=10) == 0
    assert await _escalations(committed_sessionmaker) == []
