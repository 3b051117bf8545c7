"""Concurrent writers with real commits on PostgreSQL: of two writers on one case one wins and the
other gets 412; of simultaneous opens for one person one wins and the others get 409."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from case_api.audit.models import TimelineEntry
from case_api.cases.models import Case
from case_api.main import create_app
from case_api.models import CaseOutbox
from case_api.organizations import service as organizations
from shared.db import unit_of_work
from tests.case_api.conftest import open_case, register_person
from tests.conftest import auth, running, test_settings


@pytest.fixture
async def committed_client(
    database_url: str, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]]]:
    region, unit = uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(committed_sessionmaker) as session:
        await organizations.upsert(session, organization_id=region, type="region", name="Region øst")
        await organizations.upsert(
            session, organization_id=unit, type="prison", name="Oslo fengsel", parent_id=region
        )
    app = create_app(test_settings("case_api.config", database_url))
    async with running(app) as client:
        yield client, unit, auth("coordinator", org=str(region))


async def test_two_concurrent_writers_one_wins_the_other_gets_412(
    committed_client: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    client, unit, headers = committed_client
    case = await open_case(client, headers, unit=unit)
    url = f"/api/v1/cases/{case['id']}"
    etag = (await client.get(url, headers=headers)).headers["etag"]

    results = await asyncio.gather(
        *[
            client.patch(url, json={"priority_groups": [group]}, headers={**headers, "If-Match": etag})
            for group in ("woman", "sami_speaker")
        ]
    )
    statuses = sorted(response.status_code for response in results)
    assert statuses == [200, 412], [response.text for response in results]
    winner = next(response for response in results if response.status_code == 200).json()

    after = (await client.get(url, headers=headers)).json()
    assert after["priority_groups"] == winner["priority_groups"]
    assert after["version"] == 2
    async with committed_sessionmaker() as session:
        updates = (
            (
                await session.execute(
                    select(TimelineEntry).where(
                        TimelineEntry.case_id == uuid.UUID(case["id"]), TimelineEntry.action == "case.updated"
                    )
                )
            )
            .scalars()
            .all()
        )
        events = (
            (
                await session.execute(
                    select(CaseOutbox).where(
                        CaseOutbox.subject == f"case/{case['id']}", CaseOutbox.type == "case.updated.v1"
                    )
                )
            )
            .scalars()
            .all()
        )
    # Nothing half-written: exactly one change on the timeline and one event.
    assert len(updates) == 1
    assert len(events) == 1


async def test_the_slower_writer_of_an_interleaved_pair_is_refused_by_the_version_check(
    committed_client: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    client, unit, headers = committed_client
    case_id = uuid.UUID((await open_case(client, headers, unit=unit))["id"])
    first, second = committed_sessionmaker(), committed_sessionmaker()
    try:
        a = await first.get(Case, case_id)
        b = await second.get(Case, case_id)
        assert a is not None
        assert b is not None
        assert a.version == b.version == 1
        a.destination_note = "first"
        await first.commit()
        b.destination_note = "second"
        with pytest.raises(StaleDataError):
            await second.commit()
    finally:
        await first.close()
        await second.close()
    async with committed_sessionmaker() as session:
        stored = await session.get(Case, case_id)
    assert stored is not None
    assert (stored.destination_note, stored.version) == ("first", 2)


async def test_simultaneous_opens_for_one_person_give_one_case_and_409s_naming_it(
    committed_client: tuple[httpx.AsyncClient, uuid.UUID, dict[str, str]],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The unique index on open cases decides, not a check before the insert: exactly one commits."""
    client, unit, headers = committed_client
    person = await register_person(client, headers)
    body = {"person_id": person["id"], "current_unit_id": str(unit), "planning_basis": "final_judgment"}

    results = await asyncio.gather(
        *[client.post("/api/v1/cases", json=body, headers=headers) for _ in range(8)]
    )

    statuses = sorted(response.status_code for response in results)
    assert statuses == [201] + [409] * 7, [response.text for response in results]
    winner = next(response for response in results if response.status_code == 201).json()["id"]
    assert {response.json()["existing_id"] for response in results if response.status_code == 409} == {winner}
    async with committed_sessionmaker() as session:
        cases = (await session.execute(select(Case.person_id, Case.id))).all()
        opened = (
            (await session.execute(select(CaseOutbox.subject).where(CaseOutbox.type == "case.opened.v1")))
            .scalars()
            .all()
        )
    assert [str(case_id) for person_id, case_id in cases if str(person_id) == person["id"]] == [winner]
    # The refused opens were rolled back whole: every case.opened event is of a case that exists.
    assert set(opened) <= {f"case/{case_id}" for _person, case_id in cases}
