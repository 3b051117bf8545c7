"""Agreement and endpoint events: a new agreement reschedules live cases one message at a time; a
new endpoint revives notices that died for want of one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from notify_worker.clients import cached
from notify_worker.consumer import make_handler
from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice
from notify_worker.notices.service import Ports
from shared.contracts.events import EndpointCreated, NotifyRecomputeRequested
from shared.db import unit_of_work, utcnow
from tests.agreement_api.agreements.helpers import activate, agreement_body
from tests.conftest import auth
from tests.notify_worker.conftest import World, days, today
from tests.notify_worker.webhook_setup import Setup


async def _ready_case(world: World, release_in: int) -> str:
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, today() + days(release_in))
    await world.give_consent(case_id, "oslo", "nav")
    return case_id


async def _feed_agreement_events(world: World) -> int:
    async with world.sessionmaker() as session:
        rows = (
            (await session.execute(select(AgreementOutbox).order_by(col(AgreementOutbox.occurred_at))))
            .scalars()
            .all()
        )
    handler = make_handler(world.sessionmaker, world.ports, cached(world.ports.agreements, 0))
    for row in rows:
        await handler(row.envelope())
    return len(rows)


async def _recompute_requests(world: World) -> list[NotifyOutbox]:
    async with world.sessionmaker() as session:
        rows = await session.execute(
            select(NotifyOutbox)
            .where(col(NotifyOutbox.type) == NotifyRecomputeRequested.TYPE)
            .order_by(col(NotifyOutbox.occurred_at))
        )
        return list(rows.scalars().all())


async def _oslo_milestones(world: World, case_id: str) -> dict[int | None, NoticeState]:
    return {
        n.milestone_days: n.state
        for n in await world.notices(case_id)
        if n.recipient_organization_id == world.ids["oslo"] and n.kind is NoticeKind.MILESTONE
    }


async def test_an_activated_agreement_reschedules_every_live_case_through_one_message_each(
    world: World,
) -> None:
    live = await _ready_case(world, release_in=120)
    closed = await _ready_case(world, release_in=100)
    await world.set_status(closed, "closed")
    without_date = await world.open_case()
    await world.feed()
    assert set((await _oslo_milestones(world, live)).items()) >= {(90, NoticeState.SCHEDULED)}

    agreement = (
        await world.agreement.post(
            "/api/v1/agreements",
            json=agreement_body(str(world.ids["region"]), str(world.ids["oslo"]), domains=["housing"]),
            headers=auth("coordinator", org=str(world.ids["region"])),
        )
    ).json()
    rule = {
        "recipient_organization_type": "municipality",
        "milestones": [{"days_before_release": 60}],
        "receipt_deadline_days": 3,
        "data_sharing_profile": {"domains": ["housing"], "fields": ["release_date"]},
    }
    response = await world.agreement.post(
        f"/api/v1/agreements/{agreement['id']}/rules", json=rule, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    await activate(world.agreement, agreement["id"])

    assert await _feed_agreement_events(world) >= 1
    requests = await _recompute_requests(world)
    assert {row.data["case_id"] for row in requests} == {live}, "closed and undated cases are left alone"
    assert {row.data["reason"] for row in requests} <= {"agreement.activated.v1", "agreement.changed.v1"}
    # Asking is not doing: the schedule is untouched until the request itself is consumed.
    assert 60 not in await _oslo_milestones(world, live)

    handler = make_handler(world.sessionmaker, world.ports, cached(world.ports.agreements, 0))
    for row in requests:
        await handler(row.envelope())
        await handler(row.envelope())  # redelivered: the inbox absorbs it
    milestones = await _oslo_milestones(world, live)
    assert milestones[60] is NoticeState.SCHEDULED
    assert {milestones[days_] for days_ in (90, 30, 7, 0)} == {NoticeState.CANCELLED}
    async with world.sessionmaker() as session:
        notice = (
            await session.execute(
                select(NotifyNotice).where(
                    col(NotifyNotice.case_id) == uuid.UUID(live), col(NotifyNotice.milestone_days) == 60
                )
            )
        ).scalar_one()
    assert notice.agreement_source is AgreementSource.AGREEMENT
    assert notice.agreement_id == uuid.UUID(agreement["id"])
    assert notice.receipt_deadline_days == 3
    assert await world.notices(without_date) == []


async def test_a_new_endpoint_revives_notices_that_died_without_one(world: World) -> None:
    case_id = await _ready_case(world, release_in=120)
    await world.feed()
    oslo = world.ids["oslo"]
    earlier = utcnow() - timedelta(hours=1)
    async with unit_of_work(world.sessionmaker) as session:
        notices = (
            await session.execute(select(NotifyNotice).where(col(NotifyNotice.case_id) == uuid.UUID(case_id)))
        ).scalars()
        for notice in notices:
            if notice.recipient_organization_id == oslo and notice.milestone_days == 90:
                notice.state, notice.dead_at, notice.escalated_at = NoticeState.DEAD, earlier, earlier

    response = await world.agreement.post(
        f"/api/v1/organizations/{oslo}/webhooks",
        json={"url": "https://8.8.8.8/oslo/varsler", "description": "Oslo"},
        headers=auth("admin"),
    )
    assert response.status_code == 201, response.text
    await _feed_agreement_events(world)

    [revived] = [
        n
        for n in await world.notices(case_id)
        if n.recipient_organization_id == oslo and n.milestone_days == 90
    ]
    assert revived.state is NoticeState.SCHEDULED
    assert revived.dead_at is None
    assert revived.escalated_at is None
    assert revived.due_at >= earlier
    others = [n for n in await world.notices(case_id) if n.recipient_organization_id != oslo]
    assert NoticeState.DEAD not in {n.state for n in others}


async def test_an_endpoint_registered_just_after_a_death_gets_the_revived_notice(
    setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The notice dies because its recipient has no endpoint; 0.1 s later one is registered. The
    endpoint event drops the cached empty list, so the revived notice is delivered and verified
    (with a 10 s cache and no such drop it died again, for good)."""
    response = await setup.agreement.post(
        "/api/v1/organizations",
        json={"type": "municipality", "name": "Fredrikstad kommune", "kommunenummer": "3107"},
        headers=auth("admin"),
    )
    assert response.status_code == 201, response.text
    organization_id = uuid.UUID(response.json()["id"])
    endpoints = cached(setup.agreements, 10)
    dispatcher = setup.dispatcher(agreements=endpoints)
    notice_id = await setup.notice(organization_id=organization_id)
    await dispatcher.run_once()
    async with sessionmaker() as session:
        dead = await session.get(NotifyNotice, notice_id, populate_existing=True)
    assert dead is not None
    assert dead.state is NoticeState.DEAD

    await asyncio.sleep(0.1)
    registered = await setup.agreement.post(
        f"/api/v1/organizations/{organization_id}/webhooks",
        json={"url": setup.receiver.url_of("fredrikstad"), "key_kind": "hmac"},
        headers=auth("admin"),
    )
    assert registered.status_code == 201, registered.text
    setup.receiver.secrets["fredrikstad"] = registered.json()["key"]["secret"]
    async with sessionmaker() as session:
        rows = (
            await session.execute(select(AgreementOutbox).order_by(col(AgreementOutbox.occurred_at)))
        ).scalars()
        created = [row.envelope() for row in rows if row.type == EndpointCreated.TYPE]
    # Only endpoint events are handed in: the case routes' ports are never asked.
    handler = make_handler(
        setup.sessionmaker, Ports(agreements=setup.agreements, cases=setup.facts), endpoints
    )
    for event in created:
        await handler(event)
    await dispatcher.run_once()

    notice, delivery, attempts = await setup.state(notice_id)
    assert notice.state is NoticeState.DELIVERED
    assert [item.verified for item in setup.receiver.requests("fredrikstad")] == [True]
    assert [item.notice_id for item in setup.receiver.requests("fredrikstad")] == [str(notice_id)]
    assert (delivery.endpoint_id, len(attempts)) == (uuid.UUID(registered.json()["id"]), 1)
