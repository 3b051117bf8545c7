"""A notice's content is decided at send time: a claimed notice whose date moved, or whose consent
was withdrawn, before anything of it was delivered is superseded, never sent as it was
(docs/notices.md, "What is checked before each attempt").

The schedule follows case-api's real events (the ``world`` fixture); Oslo kommune's one webhook
endpoint is a real local receiver that fails at first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from notify_worker.deliveries.models import DeliveryState, NotifyDelivery
from notify_worker.notices.models import NoticeState, NotifyNotice
from shared.db import unit_of_work, utcnow
from tests.notify_worker.conftest import World, days, today
from tests.notify_worker.webhook_setup import Setup, start_setup
from tests.webhook_receiver import Answer, Receiver

MILESTONE = "notice.release_upcoming.v1"


@pytest.fixture
async def oslo(database_url: str, world: World, receiver: Receiver) -> AsyncIterator[Setup]:
    """Oslo kommune's one endpoint is ``receiver``; case-api answers the notice facts."""
    async with start_setup(
        database_url, world.sessionmaker, receiver, organization_id=world.ids["oslo"], facts=world.ports.cases
    ) as ready:
        yield ready


async def _claimed_and_failing(world: World, oslo: Setup) -> tuple[str, date, str]:
    """A case released in 40 days (its 90-day notice is due now) whose notice to Oslo is claimed
    and whose first attempt failed (the receiver answered 500); returns the case, its date and the
    consent."""
    release = today() + days(40)
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, release)
    consent_id = await world.give_consent(case_id, "oslo")
    await world.feed()
    oslo.receiver.answers = [Answer(500)]
    await oslo.dispatcher(schedule=[3600]).run_once()
    requests = oslo.receiver.requests()
    assert len(requests) == 1, [(r.status, r.payload) for r in requests]
    [request] = requests
    assert (request.status, request.payload["release_date"]) == (500, release.isoformat())
    notice = await _ninety(world, case_id)
    assert notice.state is NoticeState.CLAIMED, "retrying: the notice stays claimed"
    await _retry_now(oslo)
    return case_id, release, consent_id


async def _retry_now(oslo: Setup) -> None:
    """Bring every pending delivery's next attempt forward to now."""
    async with unit_of_work(oslo.sessionmaker) as session:
        await session.execute(
            update(NotifyDelivery)
            .where(col(NotifyDelivery.state) == DeliveryState.PENDING)
            .values(next_attempt_at=utcnow())
        )


async def _ninety(world: World, case_id: str) -> NotifyNotice:
    """Oslo's 90-day notice of the case (the only one due)."""
    [notice] = [
        n
        for n in await world.notices(case_id)
        if n.recipient_organization_id == world.ids["oslo"] and n.milestone_days == 90
    ]
    return notice


async def _deliveries(oslo: Setup) -> list[NotifyDelivery]:
    async with oslo.sessionmaker() as session:
        rows = await session.execute(select(NotifyDelivery).order_by(col(NotifyDelivery.created_at)))
        return list(rows.scalars())


async def test_a_date_moved_while_its_notice_is_retried_reaches_the_receiver_as_the_date_that_stands(
    world: World, oslo: Setup
) -> None:
    case_id, release, _consent = await _claimed_and_failing(world, oslo)
    moved = release - timedelta(days=1)
    await world.set_release(case_id, moved)
    await world.feed()

    await oslo.dispatcher(schedule=[3600]).run_once()  # the receiver answers 2xx from now on

    verified = [r for r in oslo.receiver.requests() if r.status == 200 and r.verified]
    assert [r.payload["release_date"] for r in verified] == [moved.isoformat()]
    assert verified[-1].payload["type"] == MILESTONE
    first, second = await _deliveries(oslo)
    assert (first.state, first.last_error_class) == (DeliveryState.SUPERSEDED, "release_date_moved")
    assert second.state is DeliveryState.SUCCEEDED
    assert first.webhook_id != second.webhook_id, "new content, new webhook-id"
    notice = await _ninety(world, case_id)
    assert (notice.state, notice.release_date) == (NoticeState.DELIVERED, moved)


async def test_no_attempt_follows_a_consumed_consent_withdrawal(world: World, oslo: Setup) -> None:
    case_id, _release, consent_id = await _claimed_and_failing(world, oslo)
    await world.withdraw(case_id, consent_id)
    await world.feed()
    before = len(oslo.receiver.requests())

    for _ in range(3):
        await oslo.dispatcher(schedule=[3600]).run_once()
        await _retry_now(oslo)

    assert len(oslo.receiver.requests()) == before == 1, "nothing sent after the withdrawal was consumed"
    [delivery] = await _deliveries(oslo)
    assert (delivery.state, delivery.last_error_class) == (DeliveryState.SUPERSEDED, "held")
    notice = await _ninety(world, case_id)
    assert (notice.state, notice.hold_reason) == (NoticeState.HELD, "no_consent")
