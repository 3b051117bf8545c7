"""What each recipient was last told (``notify_told``), the change notice that follows from it, and
one notice, not two, for one date at one moment (docs/notices.md, "What a recipient holds").

The schedule is driven by case-api's real events (the ``world`` fixture); Oslo kommune's one webhook
endpoint is a real local receiver, and the dispatcher asks the real case-api for the notice facts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from notify_worker import models
from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.notices.models import (
    PENDING_STATES,
    AgreementSource,
    NoticeKind,
    NoticeState,
    NotifyNotice,
    RecipientKind,
)
from notify_worker.notices.service import recompute
from notify_worker.receipts.escalation import escalate_overdue
from shared.contracts.events import NoticeCancelled
from shared.db import unit_of_work
from tests.conftest import auth
from tests.notify_worker.conftest import World, days, today
from tests.notify_worker.webhook_setup import Setup, ops_client, start_setup
from tests.webhook_receiver import Receiver

MILESTONE = "notice.release_upcoming.v1"
CHANGE = "notice.release_date_changed.v1"


@pytest.fixture
async def oslo(database_url: str, world: World, receiver: Receiver) -> AsyncIterator[Setup]:
    """Oslo kommune's one endpoint is ``receiver``; case-api answers the notice facts."""
    async with start_setup(
        database_url, world.sessionmaker, receiver, organization_id=world.ids["oslo"], facts=world.ports.cases
    ) as ready:
        yield ready


async def _told_then_moved(world: World, oslo: Setup, *, first: int, then: int) -> str:
    """A case released in ``first`` days (more than 30: only the 90-day notice is due) whose 90-day
    notice is delivered to Oslo; then the date moves to ``then`` days, fed to the worker."""
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, today() + days(first))
    await world.give_consent(case_id, "oslo")  # the NAV office stays held
    await world.feed()
    await oslo.dispatcher().run_once()
    assert _sent(oslo) == [(MILESTONE, 90, today() + days(first))]
    await world.set_release(case_id, today() + days(then))
    await world.feed()
    return case_id


def _sent(oslo: Setup) -> list[tuple[str, int | None, date]]:
    """What Oslo received, in order: (type, milestone, release date)."""
    return [
        (body["type"], body["milestone_days"], date.fromisoformat(body["release_date"]))
        for body in (request.payload for request in oslo.receiver.requests())
    ]


async def _oslo_notices(world: World, case_id: str) -> list[NotifyNotice]:
    return [n for n in await world.notices(case_id) if n.recipient_organization_id == world.ids["oslo"]]


async def _notice(world: World, case_id: str, *, milestone: int | None) -> NotifyNotice:
    (found,) = [n for n in await _oslo_notices(world, case_id) if n.milestone_days == milestone]
    return found


async def _pending_changes(world: World, case_id: str) -> list[NotifyNotice]:
    return [
        n
        for n in await _oslo_notices(world, case_id)
        if n.kind is NoticeKind.CHANGE and n.state in PENDING_STATES
    ]


async def _recompute(world: World, case_id: str) -> None:
    async with unit_of_work(world.sessionmaker) as session:
        await recompute(session, uuid.UUID(case_id), ports=world.ports)


async def _told(world: World, case_id: str) -> tuple[date, uuid.UUID, datetime] | None:
    """Oslo's record: (date, notice, when)."""
    async with world.sessionmaker() as session:
        told = await session.get(
            models.NotifyTold, (uuid.UUID(case_id), world.ids["oslo"]), populate_existing=True
        )
    return (told.release_date, told.notice_id, told.told_at) if told is not None else None


async def _receipt(database_url: str, oslo: Setup, notice: NotifyNotice, body: dict[str, Any]) -> None:
    async with ops_client(database_url, oslo) as worker:
        response = await worker.post(
            f"/api/v1/notices/{notice.id}/receipts",
            json=body,
            headers=auth("municipality", org=str(oslo.organization_id), subject="oslo-fagsystem"),
        )
    assert response.status_code == 201, response.text


async def test_a_receipt_on_an_earlier_notice_causes_no_change_notice(
    database_url: str, world: World, oslo: Setup
) -> None:
    """Told 60 days, then the change to 50; the recipient then answers the first notice. The answer
    moves that notice's updated_at, never what the recipient was told."""
    case_id = await _told_then_moved(world, oslo, first=60, then=50)
    await oslo.dispatcher().run_once()
    assert _sent(oslo)[1:] == [(CHANGE, None, today() + days(50))]

    await _receipt(database_url, oslo, await _notice(world, case_id, milestone=90), {"status": "received"})
    await world.set_release(case_id, today() + days(50))  # the same date posted again
    await world.feed()
    await _recompute(world, case_id)
    assert await _pending_changes(world, case_id) == []
    await oslo.dispatcher().run_once()
    assert len(_sent(oslo)) == 2, "nothing more is sent"


async def test_an_escalation_of_an_earlier_notice_causes_no_change_notice(world: World, oslo: Setup) -> None:
    """Told 60 days, then the change to 50; the first notice escalates (no answer by its deadline)
    after the change notice was delivered. That moves its updated_at, never what was told."""
    case_id = await _told_then_moved(world, oslo, first=60, then=50)
    await oslo.dispatcher().run_once()
    first = await _notice(world, case_id, milestone=90)
    assert first.receipt_due_at is not None

    assert await escalate_overdue(world.sessionmaker, now=first.receipt_due_at, limit=10) == 1
    assert (await _notice(world, case_id, milestone=90)).escalated_at == first.receipt_due_at
    await _recompute(world, case_id)
    assert await _pending_changes(world, case_id) == []
    await oslo.dispatcher().run_once()
    assert len(_sent(oslo)) == 2, "nothing more is sent"


async def test_the_last_told_record_follows_deliveries_not_updates(
    database_url: str, world: World, oslo: Setup
) -> None:
    case_id = await _told_then_moved(world, oslo, first=60, then=50)
    first = await _notice(world, case_id, milestone=90)
    assert first.delivered_at is not None
    assert await _told(world, case_id) == (today() + days(60), first.id, first.delivered_at), (
        "a pending change notice tells nothing yet"
    )

    await oslo.dispatcher().run_once()
    change = await _notice(world, case_id, milestone=None)
    assert change.state is NoticeState.DELIVERED
    async with world.sessionmaker() as session:
        (first_2xx,) = (
            await session.execute(
                select(col(NotifyAttempt.at))
                .join(NotifyDelivery, col(NotifyDelivery.id) == col(NotifyAttempt.delivery_id))
                .where(col(NotifyDelivery.notice_id) == change.id, col(NotifyAttempt.status_code) == 200)
            )
        ).scalars()
    told = (today() + days(50), change.id, first_2xx)
    assert await _told(world, case_id) == told

    await _receipt(database_url, oslo, first, {"status": "received"})
    assert first.receipt_due_at is not None
    assert await escalate_overdue(world.sessionmaker, now=first.receipt_due_at + days(1), limit=10) == 2
    await world.set_release(case_id, today() + days(50))
    await world.feed()
    assert await _told(world, case_id) == told, "receipts, escalation and recomputes leave it alone"


async def test_a_notice_whose_2xx_came_first_never_overwrites_a_later_one(world: World, oslo: Setup) -> None:
    """Two endpoints took the milestone notice: the first said 2xx at T1, the other keeps it open
    until T3. A change notice was delivered at T2 in between: it stays what Oslo was last told."""
    case_id, recipient = uuid.uuid4(), world.ids["oslo"]
    t1 = datetime.now(UTC) - timedelta(hours=3)
    t2, t3 = t1 + timedelta(hours=1), t1 + timedelta(hours=2)
    milestone = _claimed(case_id, recipient, NoticeKind.MILESTONE, date(2027, 3, 1))
    change = _claimed(case_id, recipient, NoticeKind.CHANGE, date(2027, 3, 8))
    open_one = delivery(milestone, DeliveryState.PENDING, None)
    async with unit_of_work(world.sessionmaker) as session:
        session.add_all([milestone, change])
        await session.flush()
        session.add_all(
            [
                delivery(milestone, DeliveryState.SUCCEEDED, t1),
                open_one,
                delivery(change, DeliveryState.SUCCEEDED, t2),
            ]
        )
    dispatcher = oslo.dispatcher()
    assert await dispatcher.finish_notices(t2) == 1, "the change notice; the milestone's delivery is open"
    assert await _told(world, str(case_id)) == (date(2027, 3, 8), change.id, t2)

    async with unit_of_work(world.sessionmaker) as session:
        ended = await session.get(NotifyDelivery, open_one.id)
        assert ended is not None
        ended.state, ended.ended_at = DeliveryState.DEAD, t3
    assert await dispatcher.finish_notices(t3) == 1
    async with world.sessionmaker() as session:
        delivered = await session.get(NotifyNotice, milestone.id, populate_existing=True)
    assert delivered is not None
    assert (delivered.state, delivered.delivered_at) == (NoticeState.DELIVERED, t1)
    assert await _told(world, str(case_id)) == (date(2027, 3, 8), change.id, t2)


def _claimed(case_id: uuid.UUID, recipient: uuid.UUID, kind: NoticeKind, release_date: date) -> NotifyNotice:
    return NotifyNotice(
        case_id=case_id,
        recipient_organization_id=recipient,
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=kind,
        milestone_days=30 if kind is NoticeKind.MILESTONE else None,
        release_date=release_date,
        due_at=datetime.now(UTC) - timedelta(days=1),
        state=NoticeState.CLAIMED,
        claimed_by="worker",
        claimed_at=datetime.now(UTC) - timedelta(days=1),
        receipt_deadline_days=5,
    )


def delivery(notice: NotifyNotice, state: DeliveryState, ended_at: datetime | None) -> NotifyDelivery:
    """A delivery of ``notice`` to an endpoint of its own, in ``state`` (ended at ``ended_at``)."""
    return NotifyDelivery(
        notice_id=notice.id,
        endpoint_id=uuid.uuid4(),
        organization_id=notice.recipient_organization_id,
        url="https://example.invalid/hook",
        webhook_id=f"msg_{uuid.uuid4().hex}",
        state=state,
        attempts=1,
        next_attempt_at=datetime.now(UTC) + timedelta(days=1),
        ended_at=ended_at,
    )


async def test_a_milestone_due_now_carries_the_new_date_alone(world: World, oslo: Setup) -> None:
    """Told 60 days; the date moves to 20 days, so the 30-day notice falls due now with the new
    date: it tells the change, and no change notice goes beside it."""
    case_id = await _told_then_moved(world, oslo, first=60, then=20)
    assert await _pending_changes(world, case_id) == []
    await oslo.dispatcher().run_once()
    assert _sent(oslo)[1:] == [(MILESTONE, 30, today() + days(20))]
    await _recompute(world, case_id)
    assert await _pending_changes(world, case_id) == []


async def test_a_change_notice_and_a_milestone_falling_due_together_send_one_notice(
    world: World, oslo: Setup
) -> None:
    """Told 60 days; the date moves to 45 days while no delivery round runs. The change notice is
    due now and the 30-day notice 15 days later; a round after both fell due sends the milestone
    notice, which carries the new date, and cancels the change notice."""
    case_id = await _told_then_moved(world, oslo, first=60, then=45)
    (change,) = await _pending_changes(world, case_id)
    milestone = await _notice(world, case_id, milestone=30)
    assert milestone.due_at > datetime.now(UTC) + days(14)

    await oslo.dispatcher().run_once(now=milestone.due_at + timedelta(minutes=1))
    assert _sent(oslo)[1:] == [(MILESTONE, 30, today() + days(45))]
    assert (await _notice(world, case_id, milestone=None)).state is NoticeState.CANCELLED
    cancelled = [e for e in await oslo.events(NoticeCancelled.TYPE) if e["notice_id"] == str(change.id)]
    assert [e["reason"] for e in cancelled] == ["no_longer_applies"]


async def test_a_claimed_change_notice_whose_date_moves_back_is_never_sent(world: World, oslo: Setup) -> None:
    """The change notice to 50 days is claimed, its deliveries planned, when the date moves back to
    60: Oslo was last told 60, so the change notice is superseded before it goes out and cancelled,
    and Oslo never hears of 50 (docs/notices.md, "What is checked before each attempt")."""
    case_id = await _told_then_moved(world, oslo, first=60, then=50)
    dispatcher = oslo.dispatcher()
    assert await dispatcher.plan(datetime.now(UTC)) == 1, "the change notice is claimed, not yet sent"
    await world.set_release(case_id, today() + days(60))
    await world.feed()
    assert await _pending_changes(world, case_id) == []

    await dispatcher.run_once()
    assert _sent(oslo) == [(MILESTONE, 90, today() + days(60))]
    async with world.sessionmaker() as session:
        deliveries = (await session.execute(select(NotifyDelivery))).scalars().all()
    assert sorted(d.state for d in deliveries) == [DeliveryState.SUCCEEDED, DeliveryState.SUPERSEDED]
    told = await _told(world, case_id)
    assert told is not None
    assert told[0] == today() + days(60)
