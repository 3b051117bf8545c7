"""Two staff take the last place at the same moment, with real commits on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.main import create_app
from case_api.market.models import MarketAppointment
from case_api.organizations import service as organizations
from shared.db import unit_of_work
from tests.case_api.conftest import open_case
from tests.case_api.market.helpers import book, market_session, provider
from tests.conftest import auth, running, test_settings


@pytest.fixture
async def committed_client(
    database_url: str, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, uuid.UUID, dict[str, str]]]:
    region, unit, nav = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(committed_sessionmaker) as session:
        await organizations.upsert(session, organization_id=region, type="region", name="Region øst")
        await organizations.upsert(
            session, organization_id=unit, type="prison", name="Oslo fengsel", parent_id=region
        )
        await organizations.upsert(session, organization_id=nav, type="nav_office", name="NAV Oslo")
    app = create_app(test_settings("case_api.config", database_url))
    async with running(app) as client:
        yield client, unit, nav, auth("coordinator", org=str(region))


async def test_two_staff_booking_the_last_place_at_once_one_wins(
    committed_client: tuple[httpx.AsyncClient, uuid.UUID, uuid.UUID, dict[str, str]],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    client, unit, nav, headers = committed_client
    capacity = 2
    nav_provider = await provider(client, headers, nav)
    slot = await market_session(client, headers, unit=unit, provider_id=nav_provider["id"], capacity=capacity)
    first = await open_case(client, headers, unit=unit)
    assert (await book(client, headers, slot["id"], first["id"])).status_code == 201
    a = await open_case(client, headers, unit=unit)
    b = await open_case(client, headers, unit=unit)

    results = await asyncio.gather(
        book(client, headers, slot["id"], a["id"]), book(client, headers, slot["id"], b["id"])
    )
    statuses = sorted(response.status_code for response in results)
    assert statuses == [201, 409], [response.text for response in results]
    async with committed_sessionmaker() as session:
        stored = (
            await session.execute(
                select(func.count())
                .select_from(MarketAppointment)
                .where(MarketAppointment.session_id == uuid.UUID(slot["id"]))
            )
        ).scalar_one()
    assert stored == capacity
