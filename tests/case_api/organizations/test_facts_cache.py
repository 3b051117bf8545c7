"""The organization facts every request needs are read once per few seconds, and a directory
event handed to case-api's consumer handler takes effect at the next request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from case_api.consumer import make_handler
from case_api.organizations import service as organizations
from shared.events import EventEnvelope
from tests.case_api.conftest import Directory, open_case, register_person
from tests.events import organization_event

ORGANIZATION_READ = re.compile(r"\bFROM case_organization_ref\b")


@pytest.fixture
def facts_cache(case_client: httpx.AsyncClient) -> organizations.FactsCache:
    """The app's cache, replaced by an empty one whose entries outlive a slow machine: only a
    directory change may end them here, never the clock."""
    transport = case_client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app: Any = transport.app
    app.state.organization_facts = organizations.FactsCache(ttl=3600.0)
    return app.state.organization_facts  # type: ignore[no-any-return]


@pytest.fixture
def organization_reads(connection: AsyncConnection) -> Iterator[list[str]]:
    """Statements on the test connection that read the organization directory."""
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if ORGANIZATION_READ.search(statement):
            reads.append(statement)

    sync = connection.sync_connection
    assert sync is not None
    event.listen(sync, "before_cursor_execute", seen)
    yield reads
    event.remove(sync, "before_cursor_execute", seen)


async def test_the_callers_organization_is_read_once_and_again_after_a_change(
    case_client: httpx.AsyncClient,
    directory: Directory,
    facts_cache: organizations.FactsCache,
    organization_reads: list[str],
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    organization_reads.clear()
    for _ in range(3):
        response = await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)
        assert response.status_code == 200
    assert organization_reads == []
    facts_cache.clear()
    assert (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).status_code == 200
    assert len(organization_reads) == 1  # the region is its own region: no walk up


async def test_opening_cases_reads_the_unit_once(
    case_client: httpx.AsyncClient,
    directory: Directory,
    facts_cache: organizations.FactsCache,
    organization_reads: list[str],
) -> None:
    headers = directory.coordinator_east
    await open_case(case_client, headers, unit=directory.unit_oslo)
    organization_reads.clear()
    second = await open_case(case_client, headers, unit=directory.unit_oslo)
    assert organization_reads == []
    assert second["region_id"] == str(directory.region_east)


def moved(unit: uuid.UUID, region: uuid.UUID) -> EventEnvelope:
    return organization_event(unit, "prison", "Oslo fengsel", parent_id=region, changed=["parent_id"])


async def test_a_unit_moved_by_a_directory_event_counts_at_the_next_request(
    case_client: httpx.AsyncClient,
    directory: Directory,
    facts_cache: organizations.FactsCache,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    east, south = directory.coordinator_east, directory.headers("coordinator", directory.region_south)
    await open_case(case_client, east, unit=directory.unit_oslo)  # the unit's facts are cached now

    await make_handler(sessionmaker, facts_cache)(moved(directory.unit_oslo, directory.region_south))

    person = await register_person(case_client, east)
    body = {
        "person_id": person["id"],
        "current_unit_id": str(directory.unit_oslo),
        "planning_basis": "final_judgment",
    }
    refused = await case_client.post("/api/v1/cases", json=body, headers=east)
    assert refused.status_code == 403, refused.text
    assert refused.json()["title"] == "Unit outside your scope"
    opened = await case_client.post("/api/v1/cases", json=body, headers=south)
    assert opened.status_code == 201, opened.text
    assert opened.json()["region_id"] == str(directory.region_south)


async def test_a_region_change_reaches_its_coordinators_view_at_once(
    case_client: httpx.AsyncClient,
    directory: Directory,
    facts_cache: organizations.FactsCache,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The coordinator's own organization is cached too: it turns into a prison, and its coordinator
    is refused at once (a coordinator acts for a region)."""
    east = directory.coordinator_east
    case = await open_case(case_client, east, unit=directory.unit_oslo)
    assert (await case_client.get(f"/api/v1/cases/{case['id']}", headers=east)).status_code == 200

    changed = organization_event(directory.region_east, "prison", "Øst", changed=["type", "name"])
    await make_handler(sessionmaker, facts_cache)(changed)

    refused = await case_client.get(f"/api/v1/cases/{case['id']}", headers=east)
    assert refused.status_code == 403, refused.text
    assert refused.json()["reason"] == "wrong_organization_type"
