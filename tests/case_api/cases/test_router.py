from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case


async def test_coordinator_opens_a_case_with_every_domain_and_an_event(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(
        case_client,
        directory.coordinator_east,
        unit=directory.unit_oslo,
        priority_groups=["woman", "remand", "woman"],
    )
    assert case["status"] == "intake"
    assert case["region_id"] == str(directory.region_east)
    assert case["priority_groups"] == ["remand", "woman"]
    assert case["allowed_transitions"] == ["closed", "planning"]
    async with sessionmaker() as session:
        events = (
            (await session.execute(select(CaseOutbox).where(CaseOutbox.subject == f"case/{case['id']}")))
            .scalars()
            .all()
        )
    assert [event.type for event in events] == ["case.opened.v1"]
    assert "Nordmann" not in str(events[0].data)


async def test_a_coordinator_cannot_open_a_case_in_another_region(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from tests.case_api.conftest import register_person

    person = await register_person(case_client, directory.coordinator_east)
    response = await case_client.post(
        "/api/v1/cases",
        json={
            "person_id": person["id"],
            "current_unit_id": str(directory.unit_sem),
            "planning_basis": "final_judgment",
        },
        headers=directory.coordinator_east,
    )
    assert response.status_code == 403


async def test_illegal_status_transition_is_409_with_the_allowed_ones(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    read = await case_client.get(f"/api/v1/cases/{case['id']}", headers=directory.coordinator_east)
    response = await case_client.post(
        f"/api/v1/cases/{case['id']}/status",
        json={"status": "released"},
        headers={**directory.coordinator_east, "If-Match": read.headers["etag"]},
    )
    assert response.status_code == 409
    assert response.json()["allowed_next"] == ["closed", "planning"]


async def test_a_stale_if_match_is_412_and_changes_nothing(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    headers = directory.coordinator_east
    etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    first = await case_client.patch(
        f"/api/v1/cases/{case['id']}",
        json={"priority_groups": ["woman"]},
        headers={**headers, "If-Match": etag},
    )
    assert first.status_code == 200
    assert first.headers["etag"] != etag
    second = await case_client.patch(
        f"/api/v1/cases/{case['id']}",
        json={"priority_groups": ["sami_speaker"]},
        headers={**headers, "If-Match": etag},
    )
    assert second.status_code == 412
    after = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).json()
    assert after["priority_groups"] == ["woman"]


async def test_reading_a_case_is_written_to_the_access_log(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await case_client.get(f"/api/v1/cases/{case['id']}", headers=directory.coordinator_east)
    async with sessionmaker() as session:
        entries = (
            (await session.execute(select(AccessLogEntry).where(AccessLogEntry.case_id == case["id"])))
            .scalars()
            .all()
        )
    assert [(e.what, e.actor_role, e.basis) for e in entries] == [("case", "coordinator", "role:coordinator")]
    assert entries[0].actor_organization_id == directory.region_east


async def test_same_idempotency_key_replays_and_other_body_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from tests.case_api.conftest import identity_number

    headers = {**directory.coordinator_east, "Idempotency-Key": "register-1"}
    body = {"identity_number": identity_number(), "given_name": "Ola", "family_name": "Nordmann"}
    first = await case_client.post("/api/v1/persons", json=body, headers=headers)
    again = await case_client.post("/api/v1/persons", json=body, headers=headers)
    other = await case_client.post("/api/v1/persons", json={**body, "given_name": "Per"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422


async def test_list_filters_by_unit_and_pages(case_client: httpx.AsyncClient, directory: Directory) -> None:
    for _ in range(3):
        await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
        await asyncio.sleep(0.001)
    await open_case(case_client, directory.coordinator_east, unit=directory.unit_halden)
    page = await case_client.get(
        f"/api/v1/cases?unit_id={directory.unit_oslo}&limit=2", headers=directory.coordinator_east
    )
    assert page.status_code == 200
    first = page.json()
    assert len(first["items"]) == 2
    rest = await case_client.get(
        f"/api/v1/cases?unit_id={directory.unit_oslo}&limit=2&cursor={first['next_cursor']}",
        headers=directory.coordinator_east,
    )
    ids = [c["id"] for c in first["items"]] + [c["id"] for c in rest.json()["items"]]
    assert len(set(ids)) == 3
    assert rest.json()["next_cursor"] is None


async def test_a_replayed_create_carries_the_same_etag(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from tests.case_api.conftest import register_person

    person = await register_person(case_client, directory.coordinator_east)
    body = {
        "person_id": person["id"],
        "current_unit_id": str(directory.unit_oslo),
        "planning_basis": "remand_request",
    }
    headers = {**directory.coordinator_east, "Idempotency-Key": "open-1"}
    first = await case_client.post("/api/v1/cases", json=body, headers=headers)
    again = await case_client.post("/api/v1/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == first.headers["location"]


async def test_bad_inputs_are_problems_not_server_errors(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from shared.pagination import encode_cursor
    from tests.case_api.conftest import register_person

    person = await register_person(case_client, directory.coordinator_east)
    naive = await case_client.post(
        "/api/v1/cases",
        json={
            "person_id": person["id"],
            "current_unit_id": str(directory.unit_oslo),
            "planning_basis": "final_judgment",
            "opened_at": "2026-01-05T10:00:00",
        },
        headers=directory.coordinator_east,
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "body.opened_at"
    for cursor in (
        encode_cursor(["not a date", "x"]),
        encode_cursor(["2026-01-05T10:00:00", "0" * 32]),
        "%%%",
    ):
        response = await case_client.get(
            "/api/v1/cases", params={"cursor": cursor}, headers=directory.coordinator_east
        )
        assert response.status_code == 400, cursor
        assert response.json()["invalid_param"] == "cursor"
