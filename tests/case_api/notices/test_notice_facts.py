"""GET /cases/{id}/notice-facts: what notify-worker puts in a notice beyond ids (role service only)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx

from case_api.group.service import local_today
from notify_worker.clients import CaseClient
from shared.auth import mint_token
from tests.case_api.conftest import Directory
from tests.case_api.notices.helpers import add_member, in_days, ready_case, set_release_date

SERVICE = {"Authorization": f"Bearer {mint_token(role='service', subject='notify-worker')}"}


def facts_url(case_id: str) -> str:
    return f"/api/v1/cases/{case_id}/notice-facts"


async def test_the_facts_name_the_date_its_certainty_and_the_first_active_coordinator(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    url = f"/api/v1/cases/{case_id}"
    ended = await add_member(
        case_client,
        directory,
        case_id,
        person_name="Per Tidligere",
        role="coordinator",
        organization_id=str(directory.region_east),
        member_from=(local_today() - timedelta(days=10)).isoformat(),
        member_until=(local_today() - timedelta(days=1)).isoformat(),
    )
    first = await add_member(
        case_client,
        directory,
        case_id,
        person_name="Ola Hansen",
        role="coordinator",
        organization_id=str(directory.region_east),
        contact_phone="+47 22 00 00 00",
        contact_email="ola.hansen@kriminalomsorg.no",
    )
    await add_member(
        case_client,
        directory,
        case_id,
        person_name="Siri Senere",
        role="coordinator",
        contact_phone="12345678",
    )
    await add_member(case_client, directory, case_id, person_name="Kari Nordmann", role="inmate")
    confirmed = in_days(35)
    await set_release_date(
        case_client,
        directory.coordinator_east,
        url,
        {"kind": "confirmed", "date": confirmed.isoformat(), "certainty": "certain", "source": "court"},
    )

    response = await case_client.get(facts_url(case_id), headers=SERVICE)

    assert response.status_code == 200, response.text
    assert ended["member_until"] is not None
    assert response.json() == {
        "case_id": case_id,
        "effective_release_date": confirmed.isoformat(),
        "release_date_certainty": "certain",
        "coordinator": {
            "name": first["person_name"],
            "phone": "+47 22 00 00 00",
            "email": "ola.hansen@kriminalomsorg.no",
            "organization_id": str(directory.region_east),
        },
    }
    assert "Kari" not in response.text


async def test_without_coordinator_or_date_the_facts_are_null(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory, release={})
    response = await case_client.get(facts_url(case_id), headers=SERVICE)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "case_id": case_id,
        "effective_release_date": None,
        "release_date_certainty": None,
        "coordinator": None,
    }


async def test_the_expected_date_gives_its_own_certainty(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    body = (await case_client.get(facts_url(case_id), headers=SERVICE)).json()
    assert body["effective_release_date"] == in_days(40).isoformat()
    assert body["release_date_certainty"] == "probable"


async def test_only_the_service_role_may_ask_and_an_unknown_case_is_404(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    for role, org in (
        ("admin", None),
        ("auditor", None),
        ("coordinator", directory.region_east),
        ("municipality", directory.oslo),
        ("nav", directory.nav_grunerlokka),
    ):
        response = await case_client.get(facts_url(case_id), headers=directory.headers(role, org))
        assert response.status_code == 403, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unknown = await case_client.get(facts_url(str(uuid.uuid4())), headers=SERVICE)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


async def test_notify_workers_client_reads_the_answer(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    """The contract with notify_worker.clients.CaseClient.notice_facts, through its own code."""
    case_id = await ready_case(case_client, directory)
    await add_member(
        case_client,
        directory,
        case_id,
        person_name="Ola Hansen",
        role="coordinator",
        organization_id=str(directory.region_east),
        contact_email="ola.hansen@kriminalomsorg.no",
    )
    token = mint_token(role="service", subject="notify-worker")
    client = CaseClient("http://case-api", token, http=case_client)
    facts = await client.notice_facts(uuid.UUID(case_id))
    assert facts is not None
    assert facts.effective_release_date == in_days(40)
    assert facts.release_date_certainty == "probable"
    assert facts.coordinator is not None
    assert facts.coordinator.name == "Ola Hansen"
    assert facts.coordinator.organization_id == directory.region_east
    assert await client.notice_facts(uuid.uuid4()) is None


async def test_reading_the_facts_writes_no_access_log_entry(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    assert (await case_client.get(facts_url(case_id), headers=SERVICE)).status_code == 200
    log = await case_client.get(f"/api/v1/cases/{case_id}/access-log", headers=directory.admin)
    assert log.status_code == 200, log.text
    assert [entry for entry in log.json()["items"] if entry["actor_role"] == "service"] == []
