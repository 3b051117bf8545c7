"""Claiming due notices from several workers at once, on committed data."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.deliveries.claims import claim_due, release_stale_claims
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from shared.db import unit_of_work


def _notice(due_at: datetime, *, state: NoticeState = NoticeState.SCHEDULED, days: int = 0) -> NotifyNotice:
    return NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=uuid.uuid4(),
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=days,
        release_date=date(2027, 1, 1),
        due_at=due_at,
        state=state,
        receipt_deadline_days=5,
    )


async def test_two_racing_claimers_never_claim_the_same_notice(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with unit_of_work(committed_sessionmaker) as session:
        session.add_all(_notice(now - timedelta(minutes=i % 60)) for i in range(500))
        session.add_all(_notice(now + timedelta(hours=1)) for _ in range(20))  # not due yet
        session.add_all(_notice(now - timedelta(hours=1), state=NoticeState.HELD) for _ in range(20))

    async def claimer(worker_id: str) -> list[uuid.UUID]:
        claimed: list[uuid.UUID] = []
        while True:
            async with unit_of_work(committed_sessionmaker) as session:
                batch = await claim_due(session, worker_id=worker_id, now=now, limit=7)
                claimed.extend(notice.id for notice in batch)
            if not batch:
                return claimed
            await asyncio.sleep(0)

    first, second = await asyncio.gather(claimer("a"), claimer("b"))
    assert first, "both claimers got work"
    assert second, "both claimers got work"
    assert not set(first) & set(second), "a notice was claimed twice"
    assert len(first) + len(second) == len(set(first) | set(second)) == 500

    async with committed_sessionmaker() as session:
        states = dict(
            (
                await session.execute(
                    select(col(NotifyNotice.state), func.count()).group_by(col(NotifyNotice.state))
                )
            ).all()
        )
        owners = set((await session.execute(select(col(NotifyNotice.claimed_by)).distinct())).scalars())
    assert states == {NoticeState.CLAIMED: 500, NoticeState.SCHEDULED: 20, NoticeState.HELD: 20}
    assert owners == {"a", "b", None}


async def test_a_stale_claim_returns_to_scheduled(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with unit_of_work(committed_sessionmaker) as session:
        session.add_all([_notice(now - timedelta(hours=2)), _notice(now - timedelta(hours=2), days=7)])
    async with unit_of_work(committed_sessionmaker) as session:
        claimed = await claim_due(session, worker_id="a", now=now - timedelta(minutes=10), limit=1)
    async with unit_of_work(committed_sessionmaker) as session:
        await claim_due(session, worker_id="b", now=now, limit=5)
    async with unit_of_work(committed_sessionmaker) as session:
        assert await release_stale_claims(session, timeout=timedelta(minutes=5), now=now) == 1
    async with committed_sessionmaker() as session:
        back = await session.get(NotifyNotice, claimed[0].id)
        assert back is not None
        assert back.state is NoticeState.SCHEDULED
        assert back.claimed_by is None
        assert back.version == 3
    async with unit_of_work(committed_sessionmaker) as session:
        again = await claim_due(session, worker_id="c", now=now, limit=5)
    assert [n.id for n in again] == [claimed[0].id]
