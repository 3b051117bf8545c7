"""The transactional outbox against real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from agreement_api.organizations import service as organizations
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.outbox import OutboxRelay, RelayPublishError, add_event


class _Boom(Exception):
    pass


class RecordingBus:
    """Stands in for the broker only where the relay's own bookkeeping is under test."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.published: list[EventEnvelope] = []
        self.fail_on = fail_on or set()

    async def publish(self, event: EventEnvelope) -> None:
        if event.subject in self.fail_on:
            raise ConnectionError("broker down")
        self.published.append(event)


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


async def test_relay_marks_only_confirmed_events_and_keeps_order(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(sessionmaker) as session:
        for n in range(5):
            add_event(
                session,
                AgreementOutbox,
                type="test.happened.v1",
                source="test",
                subject=f"s/{n}",
                data={"n": n},
            )
    bus = RecordingBus(fail_on={"s/3"})
    relay = OutboxRelay(sessionmaker=sessionmaker, model=AgreementOutbox, bus=bus)  # type: ignore[arg-type]

    with pytest.raises(RelayPublishError) as failure:
        await relay.run_once()
    assert failure.value.published == 3
    assert [event.subject for event in bus.published] == ["s/0", "s/1", "s/2"]
    async with sessionmaker() as session:
        failed = (
            await session.execute(select(AgreementOutbox).where(col(AgreementOutbox.subject) == "s/3"))
        ).scalar_one()
    assert failed.published_at is None
    assert failed.attempts == 1
    assert failed.last_error == "ConnectionError"

    bus.fail_on.clear()
    assert await relay.run_once() == 2
    assert [event.subject for event in bus.published] == ["s/0", "s/1", "s/2", "s/3", "s/4"]
    assert await relay.run_once() == 0
    assert await relay.pending() == 0
