from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.case_api.conftest import Directory, open_case
from tests.case_api.consents.helpers import give_consent, make_municipality_responsible, withdraw_consent


@pytest.fixture
async def case(case_client: httpx.AsyncClient, directory: Directory) -> dict[str, Any]:
    return await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)


def timeline_url(case: dict[str, Any]) -> str:
    return f"/api/v1/cases/{case['id']}/timeline"


def access_log_url(case: dict[str, Any]) -> str:
    return f"/api/v1/cases/{case['id']}/access-log"


async def all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int) -> list[Any]:
    items: list[Any] = []
    cursor = None
    for _ in range(50):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{url} did not reach its last page")


async def test_the_timeline_shows_consent_changes_with_before_and_after(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    writer = directory.headers("coordinator", directory.region_east, subject="coord-7")
    given = await give_consent(
        case_client, writer, case["id"], organization_ids=[str(directory.oslo)], domains=["housing", "work"]
    )
    withdrawn = await withdraw_consent(case_client, writer, case["id"], given["id"], reason="Asked to stop")

    response = await case_client.get(timeline_url(case), headers=directory.headers("auditor"))
    assert response.status_code == 200
    entries = response.json()["items"]
    assert [entry["action"] for entry in entries] == ["case.opened", "consent.given", "consent.withdrawn"]
    _, given_entry, withdrawn_entry = entries
    assert (given_entry["actor"], given_entry["actor_role"], given_entry["actor_organization_id"]) == (
        "coord-7",
        "coordinator",
        str(directory.region_east),
    )
    assert (given_entry["entity"], given_entry["entity_id"]) == ("consent", given["id"])
    assert given_entry["before"] is None
    assert given_entry["after"]["basis"] == "consent"
    assert given_entry["after"]["organization_ids"] == [str(directory.oslo)]
    assert given_entry["after"]["domains"] == ["housing", "work"]
    assert withdrawn_entry["entity_id"] == given["id"]
    assert withdrawn_entry["before"] == {"withdrawn_at": None, "withdrawal_reason": None}
    assert withdrawn_entry["after"]["withdrawal_reason"] == "Asked to stop"
    assert withdrawn_entry["after"]["withdrawn_at"] is not None
    assert withdrawn.status_code == 200
    assert entries[0]["at"] <= given_entry["at"] <= withdrawn_entry["at"]


async def test_the_timeline_pages_in_order_without_gaps(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    for kind in ("ngo", "municipality", "nav_office", "health_trust"):
        await give_consent(case_client, directory.coordinator_east, case["id"], organization_types=[kind])
    whole = (await case_client.get(timeline_url(case), headers=directory.admin)).json()
    assert whole["next_cursor"] is None
    paged = await all_pages(case_client, timeline_url(case), directory.admin, limit=2)
    assert len(paged) == 5
    assert paged == whole["items"]


async def test_a_bad_cursor_is_400(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    for cursor in ("not-a-cursor", "WyJ4IiwgInkiXQ"):  # the second is ["x", "y"]
        response = await case_client.get(
            timeline_url(case), params={"cursor": cursor}, headers=directory.admin
        )
        assert response.status_code == 400
        assert response.json()["invalid_param"] == "cursor"


async def test_reading_the_timeline_is_logged_and_the_access_log_lists_reads_with_their_basis(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_municipality_responsible(sessionmaker, case["id"], "0301")
    await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_ids=[str(directory.oslo)]
    )
    municipality = directory.headers("municipality", directory.oslo, subject="oslo-1")
    assert (await case_client.get(f"/api/v1/cases/{case['id']}", headers=municipality)).status_code == 200
    assert (await case_client.get(timeline_url(case), headers=directory.coordinator_east)).status_code == 200
    auditor = directory.headers("auditor", subject="auditor-1")
    assert (await case_client.get(timeline_url(case), headers=auditor)).status_code == 200

    response = await case_client.get(access_log_url(case), headers=auditor)
    assert response.status_code == 200
    entries = response.json()["items"]
    assert [(entry["what"], entry["actor_role"], entry["basis"]) for entry in entries] == [
        ("timeline", "auditor", "audit"),
        ("timeline", "coordinator", "role:coordinator"),
        ("case", "municipality", "consent"),
    ]
    assert entries[-1]["actor"] == "oslo-1"
    assert entries[-1]["actor_organization_id"] == str(directory.oslo)
    assert {entry["person_id"] for entry in entries} == {case["person"]["id"]}
    assert {entry["case_id"] for entry in entries} == {case["id"]}

    again = (await case_client.get(access_log_url(case), headers=auditor)).json()["items"]
    assert again[0]["what"] == "access_log"
    assert again[0]["actor"] == "auditor-1"
    assert again[1:] == entries


async def test_the_person_access_log_covers_every_case_and_lookup_of_the_person(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    person_id = case["person"]["id"]
    other = await open_case(case_client, directory.coordinator_east, unit=directory.unit_halden)
    await case_client.get(f"/api/v1/cases/{case['id']}", headers=directory.coordinator_east)
    await case_client.get(
        f"/api/v1/persons/{person_id}", headers=directory.headers("prison_staff", directory.unit_oslo)
    )
    await case_client.get(f"/api/v1/cases/{other['id']}", headers=directory.coordinator_east)

    url = f"/api/v1/persons/{person_id}/access-log"
    entries = await all_pages(case_client, url, directory.headers("auditor"), limit=1)
    assert [(entry["what"], entry["case_id"], entry["basis"]) for entry in entries] == [
        ("person", None, "role:prison_staff"),
        ("case", case["id"], "role:coordinator"),
    ]
    assert all(entry["person_id"] == person_id for entry in entries)
    other_person = (
        await case_client.get(f"/api/v1/persons/{other['person']['id']}/access-log", headers=directory.admin)
    ).json()
    assert [(entry["what"], entry["case_id"]) for entry in other_person["items"]] == [("case", other["id"])]


async def test_an_unknown_person_or_case_is_404(case_client: httpx.AsyncClient, directory: Directory) -> None:
    unknown = uuid.uuid4()
    for url in (
        f"/api/v1/persons/{unknown}/access-log",
        f"/api/v1/cases/{unknown}/access-log",
        f"/api/v1/cases/{unknown}/timeline",
    ):
        assert (await case_client.get(url, headers=directory.headers("auditor"))).status_code == 404


@pytest.mark.parametrize(
    ("role", "org_name"),
    [
        ("prison_staff", "unit_oslo"),
        ("municipality", "oslo"),
        ("nav", "nav_grunerlokka"),
        ("health", "health_trust"),
        ("service_market", "ngo"),
    ],
)
async def test_roles_outside_the_audit_readers_may_not_read_the_timeline(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
    org_name: str,
) -> None:
    org = getattr(directory, org_name)
    await make_municipality_responsible(sessionmaker, case["id"], "0301")
    await give_consent(case_client, directory.coordinator_east, case["id"], organization_ids=[str(org)])
    response = await case_client.get(timeline_url(case), headers=directory.headers(role, org))
    assert response.status_code == 403


async def test_a_coordinator_outside_the_region_does_not_see_the_timeline(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    response = await case_client.get(
        timeline_url(case), headers=directory.headers("coordinator", directory.region_south)
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("role", "org_name"),
    [
        ("coordinator", "region_east"),
        ("prison_staff", "unit_oslo"),
        ("municipality", "oslo"),
        ("nav", "nav_grunerlokka"),
        ("health", "health_trust"),
    ],
)
async def test_only_admins_and_auditors_read_access_logs(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], role: str, org_name: str
) -> None:
    headers = directory.headers(role, getattr(directory, org_name))
    case_log = await case_client.get(access_log_url(case), headers=headers)
    person_log = await case_client.get(f"/api/v1/persons/{case['person']['id']}/access-log", headers=headers)
    assert (case_log.status_code, person_log.status_code) == (403, 403)
    admin = await case_client.get(access_log_url(case), headers=directory.admin)
    assert admin.status_code == 200
