"""The transactional outbox against real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from agreement_api.organizations import service as organizations
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate
from shared.bus import RabbitMQBus
from shared.contracts.events import NotifyRecomputeRequested
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.outbox import OutboxRelay, RelayPublishError, add_event
from tests.events import placeholder
from tests.infra import RabbitMQ, unique_name


class _Boom(Exception):
    pass


async def test_outbox_row_commits_with_the_business_change(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessionmaker) as session:
        organization = await organizations.create(
            session,
            data=OrganizationCreate(
                type=OrganizationType.MUNICIPALITY, name="Moss kommune", kommunenummer="3103"
            ),
        )
    async with sessionmaker() as session:
        rows = (await session.execute(select(AgreementOutbox))).scalars().all()
    assert [(row.type, row.subject) for row in rows] == [
        ("organization.created.v1", f"organization/{organization.id}")
    ]
    assert rows[0].published_at is None
    assert rows[0].data["kommunenummer"] == "3103"


async def test_outbox_row_disappears_with_a_rollback(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async def change_that_fails_after_staging_its_event() -> None:
        async with unit_of_work(sessionmaker) as session:
            await organizations.create(
                session,
                data=OrganizationCreate(
                    type=OrganizationType.MUNICIPALITY, name="Moss kommune", kommunenummer="3103"
                ),
            )
            raise _Boom

    with pytest.raises(_Boom):
        await change_that_fails_after_staging_its_event()
    async with sessionmaker() as session:
        assert (await session.execute(select(AgreementOutbox))).scalars().all() == []
        assert (await session.execute(select(Organization))).scalars().all() == []


async def test_relay_keeps_unconfirmed_events_and_publishes_them_in_order_later(
    sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    async with unit_of_work(sessionmaker) as session:
        for n in range(5):
            add_event(
                session,
                AgreementOutbox,
                placeholder(n),
                subject=f"s/{n}",
            )

    # A broker that cannot be reached: nothing is marked sent, the first row records the failure.
    unreachable = RabbitMQBus("amqp://guest:guest@127.0.0.1:1/", exchange=exchange_name, publish_timeout=2.0)
    down = OutboxRelay(sessionmaker=sessionmaker, model=AgreementOutbox, bus=unreachable)
    with pytest.raises(RelayPublishError) as failure:
        await down.run_once()
    assert failure.value.published == 0
    async with sessionmaker() as session:
        rows = (
            (await session.execute(select(AgreementOutbox).order_by(col(AgreementOutbox.occurred_at))))
            .scalars()
            .all()
        )
    assert [row.published_at for row in rows] == [None] * 5
    assert rows[0].attempts == 1
    assert rows[0].last_error
    assert {row.attempts for row in rows[1:]} == {0}, "the relay stops at the first failure, keeping order"

    # The real broker: all five go out, in the order they happened.
    received: list[str] = []
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    queue = unique_name("test.order")
    amqp_queues.append(queue)

    all_five = asyncio.Event()

    async def handler(event: EventEnvelope) -> None:
        received.append(event.subject)
        if len(received) == 5:
            all_five.set()

    try:
        await consumer.subscribe(queue, [NotifyRecomputeRequested.TYPE], handler)
        relay = OutboxRelay(sessionmaker=sessionmaker, model=AgreementOutbox, bus=publisher)
        assert await relay.run_once() == 5
        assert await relay.run_once() == 0
        assert await relay.pending() == 0
        await asyncio.wait_for(all_five.wait(), 15)
    finally:
        await consumer.close()
        await publisher.close()
    assert received == [f"s/{n}" for n in range(5)]
