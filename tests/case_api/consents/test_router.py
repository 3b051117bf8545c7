from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.domains.models import Domain
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case
from tests.case_api.consents.helpers import give_consent, make_municipality_responsible, withdraw_consent


@pytest.fixture
async def case(case_client: httpx.AsyncClient, directory: Directory) -> dict[str, Any]:
    return await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)


def consents_url(case: dict[str, Any]) -> str:
    return f"/api/v1/cases/{case['id']}/consents"


async def events_of(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> list[CaseOutbox]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(CaseOutbox).where(CaseOutbox.subject == f"case/{case_id}").order_by(CaseOutbox.occurred_at)
        )
        return list(rows.scalars().all())


async def test_a_coordinator_records_a_consent_and_it_is_listed_as_active(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.headers("coordinator", directory.region_east, subject="coord-1")
    given = await give_consent(
        case_client,
        headers,
        case["id"],
        organization_ids=[str(directory.oslo), str(directory.oslo)],
        organization_types=["nav_office", "nav_office"],
        domains=["work", "housing", "work"],
        note="Signed at intake",
    )
    assert given["basis"] == "consent"
    assert given["legal_reference"] is None
    assert given["organization_ids"] == [str(directory.oslo)]
    assert given["organization_types"] == ["nav_office"]
    assert given["domains"] == ["housing", "work"]
    assert given["recorded_by"] == "coord-1"
    assert given["active"] is True
    assert given["withdrawn_at"] is None
    listed = await case_client.get(consents_url(case), headers=headers)
    assert listed.status_code == 200
    assert listed.json()["items"] == [given]


async def test_the_location_of_a_new_consent_can_be_read(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    response = await case_client.post(
        consents_url(case),
        json={"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"]},
        headers=directory.coordinator_east,
    )
    assert response.status_code == 201
    read = await case_client.get(response.headers["location"], headers=directory.admin)
    assert read.status_code == 200
    assert read.json() == response.json()


async def test_domains_all_covers_every_domain(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given = await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_types=["municipality"],
        domains="all",
    )
    assert given["domains"] == [domain.value for domain in Domain]


async def test_a_legal_basis_records_its_reference(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given = await give_consent(
        case_client,
        directory.admin,
        case["id"],
        basis="legal_basis",
        legal_reference="straffegjennomføringsloven § 4",
        organization_types=["municipality"],
    )
    assert (given["basis"], given["legal_reference"]) == ("legal_basis", "straffegjennomføringsloven § 4")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"basis": "legal_basis"}, "legal_reference"),
        ({"basis": "legal_basis", "legal_reference": "   "}, "legal_reference"),
        ({"basis": "consent", "legal_reference": "forvaltningsloven § 13 a"}, "legal_reference"),
        ({"organization_types": [], "organization_ids": []}, "organization_ids"),
        ({"given_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "given_at"),
    ],
    ids=[
        "legal-basis-without-reference",
        "legal-basis-with-blank-reference",
        "consent-with-a-legal-reference",
        "no-recipient",
        "given-in-the-future",
    ],
)
async def test_a_consent_breaking_a_rule_is_422_naming_the_field(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    payload = {"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"], **body}
    response = await case_client.post(consents_url(case), json=payload, headers=directory.coordinator_east)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"]
    listed = await case_client.get(consents_url(case), headers=directory.coordinator_east)
    assert listed.json()["items"] == []


async def test_an_unknown_organization_is_422_naming_its_position(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    unknown = uuid.uuid4()
    response = await case_client.post(
        consents_url(case),
        json={
            "basis": "consent",
            "organization_ids": [str(directory.oslo), str(unknown)],
            "domains": ["housing"],
        },
        headers=directory.coordinator_east,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "organization_ids[1]"
    assert str(unknown) in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domains": []}, "body.domains"),
        ({"domains": ["astrology"]}, "body.domains"),
        ({"domains": "everything"}, "body.domains"),
        ({"organization_types": ["police"]}, "body.organization_types.0"),
        ({"basis": "hunch"}, "body.basis"),
        ({"given_at": "2026-01-01T10:00:00"}, "body.given_at"),
        ({"colour": "blue"}, "body.colour"),
    ],
    ids=[
        "no-domain",
        "unknown-domain",
        "not-all",
        "unknown-type",
        "unknown-basis",
        "naive-time",
        "extra-field",
    ],
)
async def test_malformed_consent_input_is_422_naming_the_field(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    payload = {"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"], **body}
    response = await case_client.post(consents_url(case), json=payload, headers=directory.coordinator_east)
    assert response.status_code == 422
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(name.startswith(field) for name in fields), fields


async def test_a_consent_given_in_the_past_keeps_its_date(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given_at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    given = await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_types=["municipality"],
        given_at="2026-01-05T10:30:00+01:00",
    )
    assert datetime.fromisoformat(given["given_at"]) == given_at
    assert given["active"] is True


@pytest.mark.parametrize("role", ["auditor", "municipality", "nav", "health", "service_market"])
async def test_read_only_roles_may_not_give_consent(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], role: str
) -> None:
    org = {"municipality": directory.oslo, "nav": directory.nav_grunerlokka, "health": directory.health_trust}
    response = await case_client.post(
        consents_url(case),
        json={"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"]},
        headers=directory.headers(role, org.get(role)),
    )
    assert response.status_code == 403


async def test_prison_staff_of_the_unit_may_give_consent_and_others_do_not_see_the_case(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    body = {"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"]}
    own = await case_client.post(
        consents_url(case), json=body, headers=directory.headers("prison_staff", directory.unit_oslo)
    )
    other_unit = await case_client.post(
        consents_url(case), json=body, headers=directory.headers("prison_staff", directory.unit_halden)
    )
    other_region = await case_client.post(
        consents_url(case), json=body, headers=directory.headers("coordinator", directory.region_south)
    )
    assert own.status_code == 201
    assert (other_unit.status_code, other_region.status_code) == (404, 404)


async def test_a_closed_case_gets_no_new_consent_but_may_have_one_withdrawn(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    given = await give_consent(case_client, headers, case["id"], organization_types=["municipality"])
    etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    closed = await case_client.post(
        f"/api/v1/cases/{case['id']}/status", json={"status": "closed"}, headers={**headers, "If-Match": etag}
    )
    assert closed.status_code == 200
    response = await case_client.post(
        consents_url(case),
        json={"basis": "consent", "organization_types": ["nav_office"], "domains": ["work"]},
        headers=headers,
    )
    assert response.status_code == 409
    withdrawn = await withdraw_consent(case_client, headers, case["id"], given["id"])
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] is False


async def test_the_same_idempotency_key_replays_the_consent(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = {**directory.coordinator_east, "Idempotency-Key": "consent-1"}
    body = {"basis": "consent", "organization_types": ["municipality"], "domains": ["housing"]}
    first = await case_client.post(consents_url(case), json=body, headers=headers)
    again = await case_client.post(consents_url(case), json=body, headers=headers)
    other = await case_client.post(consents_url(case), json={**body, "domains": ["work"]}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    listed = await case_client.get(consents_url(case), headers=directory.coordinator_east)
    assert len(listed.json()["items"]) == 1


async def test_withdrawal_takes_effect_at_once_for_a_municipality(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await make_municipality_responsible(sessionmaker, case["id"], "0301")
    municipality = directory.headers("municipality", directory.oslo)
    case_url = f"/api/v1/cases/{case['id']}"
    assert (await case_client.get(case_url, headers=municipality)).status_code == 404
    given = await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_ids=[str(directory.oslo)]
    )
    assert (await case_client.get(case_url, headers=municipality)).status_code == 200
    response = await withdraw_consent(
        case_client, directory.coordinator_east, case["id"], given["id"], reason="Changed their mind"
    )
    assert response.status_code == 200
    withdrawn = response.json()
    assert withdrawn["active"] is False
    assert withdrawn["withdrawal_reason"] == "Changed their mind"
    assert withdrawn["withdrawn_recorded_by"] == "dev-user"
    assert datetime.fromisoformat(withdrawn["withdrawn_at"]) <= datetime.now(UTC)
    assert (await case_client.get(case_url, headers=municipality)).status_code == 404


async def test_withdrawing_a_withdrawn_consent_is_409(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given = await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_types=["ngo"]
    )
    first = await withdraw_consent(case_client, directory.coordinator_east, case["id"], given["id"])
    second = await withdraw_consent(case_client, directory.coordinator_east, case["id"], given["id"])
    assert first.status_code == 200
    assert second.status_code == 409
    assert datetime.fromisoformat(second.json()["withdrawn_at"]) == datetime.fromisoformat(
        first.json()["withdrawn_at"]
    )


async def test_withdrawing_a_consent_of_another_case_or_none_is_404(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    other = await open_case(case_client, directory.coordinator_east, unit=directory.unit_halden)
    given = await give_consent(
        case_client, directory.coordinator_east, other["id"], organization_types=["ngo"]
    )
    wrong_case = await withdraw_consent(case_client, directory.coordinator_east, case["id"], given["id"])
    unknown = await withdraw_consent(case_client, directory.coordinator_east, case["id"], str(uuid.uuid4()))
    assert (wrong_case.status_code, unknown.status_code) == (404, 404)
    listed = await case_client.get(consents_url(other), headers=directory.coordinator_east)
    assert listed.json()["items"][0]["active"] is True


async def test_a_read_only_role_may_not_withdraw(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given = await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_types=["ngo"]
    )
    response = await withdraw_consent(case_client, directory.headers("auditor"), case["id"], given["id"])
    assert response.status_code == 403


async def test_withdraw_rejects_unknown_fields(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    given = await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_types=["ngo"]
    )
    response = await withdraw_consent(
        case_client, directory.coordinator_east, case["id"], given["id"], withdrawn_at="2020-01-01T00:00:00Z"
    )
    assert response.status_code == 422


async def test_the_list_shows_active_and_withdrawn_consents(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    old = await give_consent(
        case_client, headers, case["id"], organization_types=["ngo"], given_at="2026-01-01T00:00:00Z"
    )
    new = await give_consent(case_client, headers, case["id"], organization_types=["municipality"])
    await withdraw_consent(case_client, headers, case["id"], old["id"])
    listed = (await case_client.get(consents_url(case), headers=directory.headers("auditor"))).json()["items"]
    assert [(item["id"], item["active"]) for item in listed] == [(old["id"], False), (new["id"], True)]


@pytest.mark.parametrize("role", ["municipality", "nav", "health"])
async def test_consent_gated_roles_may_not_list_consents(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
    role: str,
) -> None:
    org = {
        "municipality": directory.oslo,
        "nav": directory.nav_grunerlokka,
        "health": directory.health_trust,
    }[role]
    await make_municipality_responsible(sessionmaker, case["id"], "0301")
    await give_consent(case_client, directory.coordinator_east, case["id"], organization_ids=[str(org)])
    response = await case_client.get(consents_url(case), headers=directory.headers(role, org))
    assert response.status_code == 403


async def test_consent_events_carry_the_scope_and_no_personal_details(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    given = await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_ids=[str(directory.oslo)],
        organization_types=["nav_office"],
        domains=["housing", "income"],
        note="Nordmann signed",
    )
    response = await withdraw_consent(
        case_client, directory.coordinator_east, case["id"], given["id"], reason="Kari Nordmann said no"
    )
    events = await events_of(sessionmaker, case["id"])
    assert [event.type for event in events] == [
        "case.opened.v1",
        "case.consent_given.v1",
        "case.consent_withdrawn.v1",
    ]
    scope = {
        "consent_id": given["id"],
        "basis": "consent",
        "organization_ids": [str(directory.oslo)],
        "organization_types": ["nav_office"],
        "domains": ["housing", "income"],
    }
    given_data, withdrawn_data = events[1].data, events[2].data
    assert {key: given_data[key] for key in scope} == scope
    assert datetime.fromisoformat(given_data["given_at"]) == datetime.fromisoformat(given["given_at"])
    assert {key: withdrawn_data[key] for key in scope} == scope
    assert datetime.fromisoformat(withdrawn_data["withdrawn_at"]) == datetime.fromisoformat(
        response.json()["withdrawn_at"]
    )
    assert given_data["case_id"] == withdrawn_data["case_id"] == case["id"]
    assert "Nordmann" not in str(given_data) + str(withdrawn_data)
    assert "Kari" not in str(withdrawn_data)
